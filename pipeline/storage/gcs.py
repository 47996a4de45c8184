"""The operations of a ``gs://`` location, through gcsfs (Google Cloud Storage's JSON API).

obstore's ``GCSStore`` speaks the XML API; gcsfs speaks the JSON API, which is what
Google's own clients use and what the emulator ``fake-gcs-server`` serves, so outputs on
``gs://`` are written and tested through gcsfs. The rules are those of S3
(:mod:`~s2c_batch.pipeline.storage.s3`):

- a write is one media upload, which replaces the object atomically;
- the lock's conditional create is a media upload with ``ifGenerationMatch=0`` (the
  server answers ``412`` when the object exists, gcsfs raises ``FileExistsError``);
- an upload above :data:`CHUNK_SIZE` is a resumable upload, whose object appears only
  when its last chunk is written;
- the Zarr store is a ``zarr.storage.FsspecStore`` on gcsfs's asynchronous filesystem.

What identifies an input object (its generation, ETag and size) is one ``HEAD`` through
obstore's ``GCSStore`` (:func:`gcs_store`, :mod:`~s2c_batch.pipeline.inputs.identity`),
which finds the credentials itself (``GOOGLE_SERVICE_ACCOUNT`` or
``GOOGLE_APPLICATION_CREDENTIALS``, else the instance's service account).

The filesystem is built on the machine that uses it, from the (secret-free) ``storage``
section and that machine's Google credentials: ``GOOGLE_APPLICATION_CREDENTIALS`` (a
service-account or ``gcloud auth application-default login`` file), else the instance's
service account (gcsfs's ``google_default`` chain); ``storage.anonymous`` sends unsigned
requests; ``storage.gs_endpoint`` (resolved on the client from ``STORAGE_EMULATOR_HOST``)
names another endpoint; ``storage.max_retry`` bounds gcsfs's retries of one request.
gcsfs's core class is used, not its experimental subclass, which asks a gRPC control
API for each bucket's layout.
"""

from __future__ import annotations

import functools
import logging
import sys
import types
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.storage.retry import retry_config

#: Resumable uploads' chunk size (a multiple of 256 KiB, as GCS requires).
CHUNK_SIZE = 8 * 1024 * 1024

#: What to check when the credentials are refused.
CREDENTIALS = ("GOOGLE_APPLICATION_CREDENTIALS (a service-account or application-default credentials file) or the "
               "machine's service account")

#: The service's name, and the settings that name another endpoint.
SERVICE, ENDPOINT_SETTINGS = "Google Cloud Storage", "storage.gs_endpoint / STORAGE_EMULATOR_HOST"


def _retries_exhausted_at_debug(record: logging.LogRecord) -> bool:
    """Demote gcsfs's ``_request out of retries`` ERROR (with a traceback) to DEBUG.

    The exception it logs is raised to the caller, which reports it as one line naming the
    URL and the fix; the traceback is shown at ``-vv`` only.
    """
    if not record.getMessage().startswith("_request out of retries"):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


@functools.lru_cache(maxsize=16)
def filesystem(storage: StorageConfig, *, asynchronous: bool = False) -> Any:
    """A ``gcsfs`` filesystem for ``storage`` in this process (one per setting; no listing cache).

    Args:
        storage: the resolved ``storage`` section (``gs_endpoint``, ``anonymous``, ``max_retry``).
        asynchronous: the asynchronous form that ``zarr.storage.FsspecStore`` needs.
    """
    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    gcsfs_log = logging.getLogger("gcsfs")
    if _retries_exhausted_at_debug not in gcsfs_log.filters:
        gcsfs_log.addFilter(_retries_exhausted_at_debug)
    fs = GCSFileSystem(
        token="anon" if storage.anonymous else None,
        endpoint_url=storage.gs_endpoint.rstrip("/") if storage.gs_endpoint else None,
        asynchronous=asynchronous, use_listings_cache=False, skip_instance_cache=True,
    )
    # gcsfs retries each request 6 times over about 30 s; storage.max_retry decides instead.
    request = retry_request(retries=storage.max_retry + 1)(GCSFileSystem._request.__wrapped__)
    fs._request = types.MethodType(request, fs)
    return fs


def storage_errors() -> tuple[type[BaseException], ...]:
    """What gcsfs raises for a failed request besides ``OSError`` (empty when gcsfs was never used here)."""
    if "gcsfs.retry" not in sys.modules:
        return ()
    from gcsfs.retry import HttpError

    return (HttpError,)


def _path(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def read(storage: StorageConfig, bucket: str, key: str) -> bytes | None:
    """The bytes of ``gs://bucket/key``, or ``None`` when it does not exist."""
    try:
        return bytes(filesystem(storage).cat_file(_path(bucket, key)))
    except FileNotFoundError:
        return None


def write(storage: StorageConfig, bucket: str, key: str, data: bytes) -> None:
    """Write ``gs://bucket/key`` with one media upload (atomic)."""
    filesystem(storage).pipe_file(_path(bucket, key), data)


def create(storage: StorageConfig, bucket: str, key: str, data: bytes) -> bool:
    """Write ``gs://bucket/key`` only if it does not exist (``ifGenerationMatch=0``); ``False`` if it did."""
    try:
        filesystem(storage).pipe_file(_path(bucket, key), data, mode="create")
    except FileExistsError:
        return False
    return True


def upload(storage: StorageConfig, bucket: str, key: str, local: Path) -> None:
    """Copy ``local`` to ``gs://bucket/key`` (resumable above :data:`CHUNK_SIZE`; the object appears at the end)."""
    filesystem(storage).put_file(str(local), _path(bucket, key), chunksize=CHUNK_SIZE)


def exists(storage: StorageConfig, bucket: str, key: str) -> bool:
    """Whether ``gs://bucket/key`` is an object or a prefix holding objects."""
    return bool(filesystem(storage).exists(_path(bucket, key)))


def list_keys(storage: StorageConfig, bucket: str, prefix: str) -> list[str]:
    """Keys (relative to the bucket) of the objects under ``prefix/``, recursively."""
    base = f"{bucket}/"
    stem = prefix.strip("/")
    found = filesystem(storage).find(f"{bucket}/{stem}/" if stem else bucket)
    return sorted(str(p)[len(base):] for p in found if str(p).startswith(base))


def delete(storage: StorageConfig, bucket: str, keys: list[str]) -> None:
    """Remove the objects ``keys`` of ``bucket`` (several in batch requests); missing ones are no error."""
    fs = filesystem(storage)
    try:
        if len(keys) == 1:
            fs.rm_file(_path(bucket, keys[0]))
        elif keys:
            fs.rm([_path(bucket, key) for key in keys])
    except FileNotFoundError:
        pass


def zarr_store(storage: StorageConfig, bucket: str, key: str) -> Any:
    """A ``zarr.storage.FsspecStore`` of ``gs://bucket/key`` on gcsfs's asynchronous filesystem."""
    from zarr.storage import FsspecStore

    return FsspecStore(filesystem(storage, asynchronous=True), path=_path(bucket, key))


def gcs_store(bucket: str, storage: StorageConfig, prefix: str = "") -> Any:
    """An ``obstore.store.GCSStore`` of ``gs://bucket/prefix``, with this machine's Google credentials.

    ``storage.anonymous`` sends unsigned reads (public buckets), ``storage.gs_endpoint``
    names another endpoint, such as an emulator.
    """
    from obstore.store import GCSStore

    config: dict[str, Any] = {}
    if storage.gs_endpoint:
        config["base_url"] = storage.gs_endpoint.rstrip("/")
    if storage.anonymous:
        config["skip_signature"] = True
    return GCSStore(bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
                    retry_config=retry_config(storage), client_options={"allow_http": storage.allow_http})


def endpoint(storage: StorageConfig) -> str | None:
    """The endpoint the ``storage`` section names (``None``: Google's own)."""
    return storage.gs_endpoint


def failure(exc: BaseException) -> str | None:
    """``bucket``, ``credentials``, ``endpoint`` or ``None`` for a gcsfs error on ``gs://``.

    On a write a ``404`` (``FileNotFoundError``) is a missing bucket; gcsfs raises ``OSError("Forbidden: ...")``
    for a ``403`` and an ``HttpError`` of code ``401`` for refused credentials; aiohttp's connection errors
    name the host that cannot be reached.
    """
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "bucket"
    if getattr(exc, "code", None) in (401, 403) or text.startswith("Forbidden") or "Invalid Credentials" in text:
        return "credentials"
    if "Cannot connect" in text or "Connect" in text or "Name or service not known" in text:
        return "endpoint"
    return None
