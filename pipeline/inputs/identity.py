"""What identifies an input file for the run's fingerprint: local stat, or a remote object's headers.

A local file is its path, size and modification time. A remote object has no
mtime worth trusting, so it is its URL plus what the server says about the object:
the ``ETag`` (a content hash on S3 and most web servers), ``Last-Modified`` and the
size, from one request: a ``HEAD`` with boto3 for ``s3://`` (the same endpoint,
region, profile and credential chain as GDAL's reads), a ``HEAD`` with obstore for
``gs://`` (plus the object's ``generation``, which every write of the object changes),
a one-byte range ``GET`` with the standard library for ``http(s)://``. A replaced object
changes its ETag, so ``--resume`` refuses it like a changed local file. Other ``/vsi...``
paths are identified by their URL alone; a warning says that a replaced object goes unnoticed.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from typing import Any

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.source import Source, redact
from s2c_batch.pipeline.storage.gcs import gcs_store

log = logging.getLogger(__name__)

#: Seconds a HEAD request may take.
HEAD_TIMEOUT_S = 30.0


def describe_input(path: str | os.PathLike[str] | Source, storage: StorageConfig | None = None) -> dict[str, Any]:
    """What identifies an input: ``path``, ``size`` and ``mtime`` (local) or ``etag``/``last_modified`` (remote).

    Raises:
        InputError: a remote object cannot be described (gone, no access, server down).
    """
    source = Source.parse(path)
    if not source.remote:
        st = os.stat(source.text)
        return {"path": source.text, "size": st.st_size, "mtime": int(st.st_mtime)}
    url, scheme = source.url, source.url_scheme
    if scheme == "s3":
        return {"path": source.redacted, **_s3_head(url, storage or StorageConfig())}
    if scheme == "gs":
        return {"path": source.redacted, **_gs_head(url, storage or StorageConfig())}
    if scheme in ("http", "https"):
        return {"path": source.redacted, **_http_head(url)}
    log.warning("%s is identified by its URL only: a run resumed after the object was replaced "
                "would not notice", source.redacted)
    return {"path": source.redacted}


def _s3_head(url: str, storage: StorageConfig) -> dict[str, Any]:
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise InputError(f"reading {url!r} needs boto3 to identify the object; pip install boto3") from exc
    bucket, _, key = url.split("://", 1)[1].partition("/")
    config = BotoConfig(signature_version=UNSIGNED) if storage.anonymous else None
    try:
        session = boto3.Session(profile_name=storage.profile, region_name=storage.region)
        client = session.client("s3", endpoint_url=storage.endpoint, config=config)
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise InputError(
            f"{redact(url)!r} cannot be described (HEAD {code or exc}): check that the object exists and that "
            "the credentials of this machine may read it"
        ) from exc
    except BotoCoreError as exc:
        raise InputError(
            f"{redact(url)!r} cannot be described ({exc}); check storage.endpoint (or AWS_ENDPOINT_URL), "
            "storage.profile and the credentials of this machine"
        ) from exc
    return {
        "etag": head.get("ETag"),
        "last_modified": head["LastModified"].isoformat() if head.get("LastModified") else None,
        "size": head.get("ContentLength"),
    }


def _gs_head(url: str, storage: StorageConfig) -> dict[str, Any]:
    """Generation, ETag, Last-Modified and size of a ``gs://`` object (obstore's HEAD: the XML API's)."""
    import obstore

    bucket, _, key = url.split("://", 1)[1].partition("/")
    try:
        head = obstore.head(gcs_store(bucket, storage), key)
    except FileNotFoundError as exc:
        raise InputError(
            f"{redact(url)!r} cannot be described (HEAD: not found): check the URL (bucket, key, upper/lower case), "
            "and that storage.gs_endpoint (or STORAGE_EMULATOR_HOST) names the storage that holds it"
        ) from exc
    except Exception as exc:  # obstore's errors: refused credentials, unreachable endpoint, ...
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise InputError(
            f"{redact(url)!r} cannot be described ({detail}); check storage.gs_endpoint (or STORAGE_EMULATOR_HOST), "
            "and this machine's Google credentials (GOOGLE_APPLICATION_CREDENTIALS, or "
            "--set storage.anonymous=true for a public bucket)"
        ) from exc
    return {
        "generation": head.get("version"),
        "etag": head.get("e_tag"),
        "last_modified": head["last_modified"].isoformat() if head.get("last_modified") else None,
        "size": head.get("size"),
    }


def _http_head(url: str) -> dict[str, Any]:
    """ETag, Last-Modified and size from a one-byte range GET.

    A GET rather than a HEAD: a presigned URL is signed for GET only, and every usable
    server answers ranges anyway (GDAL needs them).
    """
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=HEAD_TIMEOUT_S) as response:  # noqa: S310 - the user's URL
            headers = response.headers
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"{redact(url)!r} cannot be described (GET: {exc}); check the URL and the server") from exc
    total = (headers.get("Content-Range") or "").rpartition("/")[2]
    size = total if total.isdigit() else headers.get("Content-Length")
    return {
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
        "size": int(size) if size and size.isdigit() else None,
    }
