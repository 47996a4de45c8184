"""The operations of an ``s3://`` location, through obstore (S3 and S3-compatible servers).

- a write is one ``PUT``, which replaces the object atomically;
- the lock's conditional create is a ``PUT`` with ``If-None-Match: *``;
- an upload above :data:`PART_SIZE` is a multipart upload, whose object appears only at
  ``CompleteMultipartUpload``;
- the Zarr store is a ``zarr.storage.ObjectStore`` on an ``S3Store`` rooted at its prefix.

Keys are full keys of the bucket. The client is built on the machine that uses it, from
the (secret-free) ``storage`` section and that machine's credential chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and ``~/.aws`` files
through boto3, an instance role), once per process for each root, setting and credential
environment (:func:`s3_store`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.storage.retry import retry_config

#: Part size of multipart uploads (S3's minimum for every part but the last is 5 MiB).
PART_SIZE = 8 * 1024 * 1024

#: What to check when the credentials are refused.
CREDENTIALS = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or storage.profile"

#: The service's name, and the settings that name another endpoint.
SERVICE, ENDPOINT_SETTINGS = "AWS", "storage.endpoint / AWS_ENDPOINT_URL"

#: What decides which credentials an ``S3Store`` finds (obstore's and boto3's chains).
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "HOME")


def s3_store(bucket: str, prefix: str, storage: StorageConfig) -> Any:
    """An ``obstore.store.S3Store`` rooted at ``s3://bucket/prefix``, built from this machine's credentials.

    One per process for each root, setting and credential environment: a block task's
    writes reuse its worker's client and connections.
    """
    return _s3_store(bucket, prefix, storage, tuple(os.environ.get(name) for name in CREDENTIAL_VARIABLES))


@functools.lru_cache(maxsize=32)
def _s3_store(bucket: str, prefix: str, storage: StorageConfig, environment: tuple[str | None, ...]) -> Any:
    """The ``S3Store`` of ``s3://bucket/prefix``; cached per ``environment`` (the credential variables' values).

    Building one costs 5-16 ms and a new connection pool; a cached store reuses both.
    Profiles and ``~/.aws`` files, which obstore does not read, go through boto3's chain.
    """
    from obstore.store import S3Store

    config: dict[str, Any] = {"region": storage.region or os.environ.get("AWS_REGION") or "us-east-1"}
    if storage.endpoint:
        config["endpoint"] = storage.endpoint.rstrip("/")
        config["virtual_hosted_style_request"] = False
    if storage.anonymous:
        config["skip_signature"] = True
    kwargs: dict[str, Any] = {}
    if not storage.anonymous and (storage.profile or "AWS_ACCESS_KEY_ID" not in os.environ):
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider

        session = boto3.Session(profile_name=storage.profile)
        if storage.profile or session.get_credentials() is not None:
            kwargs["credential_provider"] = Boto3CredentialProvider(session)
    return S3Store(bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
                   retry_config=retry_config(storage), client_options={"allow_http": storage.allow_http}, **kwargs)


def _bucket(storage: StorageConfig, bucket: str) -> Any:
    return s3_store(bucket, "", storage)


def read(storage: StorageConfig, bucket: str, key: str) -> bytes | None:
    """The bytes of ``s3://bucket/key``, or ``None`` when it does not exist."""
    import obstore

    try:
        return bytes(obstore.get(_bucket(storage, bucket), key).bytes())
    except FileNotFoundError:
        return None


def write(storage: StorageConfig, bucket: str, key: str, data: bytes) -> None:
    """Write ``s3://bucket/key`` with one ``PUT`` (it replaces an object atomically)."""
    import obstore

    obstore.put(_bucket(storage, bucket), key, data)


def create(storage: StorageConfig, bucket: str, key: str, data: bytes) -> bool:
    """Write ``s3://bucket/key`` only if it does not exist (``If-None-Match: *``); ``False`` if it did."""
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError

    try:
        obstore.put(_bucket(storage, bucket), key, data, mode="create")
    except (AlreadyExistsError, PreconditionError):
        return False
    return True


def upload(storage: StorageConfig, bucket: str, key: str, local: Path) -> None:
    """Copy ``local`` to ``s3://bucket/key`` (multipart above :data:`PART_SIZE`; the object appears at the end)."""
    import obstore

    obstore.put(_bucket(storage, bucket), key, local, chunk_size=PART_SIZE)


def exists(storage: StorageConfig, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` is an object or a prefix holding objects (the Zarr store)."""
    import obstore

    try:
        obstore.head(_bucket(storage, bucket), key)
    except FileNotFoundError:
        return bool(list_keys(storage, bucket, key))
    return True


def list_keys(storage: StorageConfig, bucket: str, prefix: str) -> list[str]:
    """Keys (relative to the bucket) of the objects under ``prefix/``, recursively."""
    import obstore

    stem = prefix.strip("/")
    keys: list[str] = []
    for batch in obstore.list(_bucket(storage, bucket), prefix=stem + "/" if stem else None):
        keys.extend(str(meta["path"]) for meta in batch)
    return sorted(keys)


def delete(storage: StorageConfig, bucket: str, keys: list[str]) -> None:
    """Remove the objects ``keys`` of ``bucket`` (several in one request); missing ones are no error."""
    import obstore

    try:
        if len(keys) == 1:
            obstore.delete(_bucket(storage, bucket), keys[0])
        elif keys:
            obstore.delete(_bucket(storage, bucket), keys)
    except FileNotFoundError:
        pass


def zarr_store(storage: StorageConfig, bucket: str, key: str) -> Any:
    """A ``zarr.storage.ObjectStore`` of ``s3://bucket/key``."""
    from zarr.storage import ObjectStore

    return ObjectStore(s3_store(bucket, key, storage))


def endpoint(storage: StorageConfig) -> str | None:
    """The endpoint the ``storage`` section names (``None``: AWS's own)."""
    return storage.endpoint


def storage_errors() -> tuple[type[BaseException], ...]:
    """What obstore raises for a failed request besides ``OSError``."""
    from obstore.exceptions import BaseError

    return (BaseError,)


def failure(exc: BaseException) -> str | None:
    """``bucket``, ``credentials``, ``endpoint`` or ``None`` for an obstore error on S3."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(exc)
    if "NoSuchBucket" in text:
        return "bucket"
    if isinstance(exc, (UnauthenticatedError, PermissionDeniedError)) or any(
            code in text for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403")):
        return "credentials"
    if "error sending request" in text or "Connect" in text or "dns error" in text:
        return "endpoint"
    return None
