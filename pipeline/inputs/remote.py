"""Scenes on object storage or behind HTTP: the ``storage`` section as GDAL options, and the opener.

An input is a :class:`~s2c_batch.pipeline.inputs.source.Source`: a local path, an
``s3://``, ``gs://`` or ``http(s)://`` URL, or a GDAL ``/vsi...`` path, which GDAL reads
through its virtual file systems (:attr:`~s2c_batch.pipeline.inputs.source.Source.gdal_path`).

How GDAL reaches the storage comes from the ``storage`` config section
(:class:`~s2c_batch.pipeline.config.StorageConfig`), resolved on the client
(:func:`resolve_storage`: ``AWS_ENDPOINT_URL`` fills an unset endpoint,
``STORAGE_EMULATOR_HOST`` an unset ``gs_endpoint``) and carried
to the workers inside the read tasks, where :func:`raster_env` turns it into GDAL
options around every open and read: a ``rasterio.Env`` entered on the client does
not reach a worker. The section holds no secret; credentials come from each
machine's own chain, which GDAL reads itself (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
``~/.aws/credentials``, an instance role; for ``gs://``, ``GOOGLE_APPLICATION_CREDENTIALS``
or the instance's service account).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import rasterio
from rasterio.io import DatasetReader

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.source import Source

#: The environment variable that points boto3, the AWS CLI and s2c-batch at an S3-compatible endpoint.
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"

#: The environment variable that points Google's storage clients (and s2c-batch's ``gs://``) at an emulator.
GS_ENDPOINT_VARIABLE = "STORAGE_EMULATOR_HOST"


def resolve_storage(storage: StorageConfig, environ: Mapping[str, str] | None = None) -> StorageConfig:
    """The ``storage`` section as the workers must see it, resolved on the client.

    An unset ``storage.endpoint`` takes the client's ``AWS_ENDPOINT_URL``, an unset
    ``storage.gs_endpoint`` its ``STORAGE_EMULATOR_HOST`` (``host:port`` alone means
    ``http://host:port``, as for Google's clients), so workers started elsewhere, whose
    environment does not hold them, reach the same endpoints.

    Raises:
        ConfigError: a variable is not a URL, or an endpoint is ``http://`` without
            ``storage.allow_http``.
    """
    env = os.environ if environ is None else environ
    if storage.endpoint is None and env.get(ENDPOINT_VARIABLE):
        try:
            storage = replace(storage, endpoint=env[ENDPOINT_VARIABLE])
        except ConfigError as exc:
            raise ConfigError(f"{ENDPOINT_VARIABLE}={env[ENDPOINT_VARIABLE]!r}: {exc}") from exc
    if storage.gs_endpoint is None and env.get(GS_ENDPOINT_VARIABLE):
        host = env[GS_ENDPOINT_VARIABLE]
        try:
            storage = replace(storage, gs_endpoint=host if "://" in host else f"http://{host}")
        except ConfigError as exc:
            raise ConfigError(f"{GS_ENDPOINT_VARIABLE}={host!r}: {exc}") from exc
    for what, url, source in (("S3", storage.endpoint, f"storage.endpoint or {ENDPOINT_VARIABLE}"),
                              ("gs://", storage.gs_endpoint, f"storage.gs_endpoint or {GS_ENDPOINT_VARIABLE}")):
        if url and url.lower().startswith("http://") and not storage.allow_http:
            raise ConfigError(
                f"the {what} endpoint {url!r} ({source}) is plain http; set --set storage.allow_http=true "
                "to allow unencrypted requests, or use its https:// address"
            )
    return storage


def gdal_options(path: str | os.PathLike[str] | Source, storage: StorageConfig | None) -> dict[str, str]:
    """GDAL configuration options for reading ``path`` with ``storage`` (no secret among them).

    Remote inputs get the cloud defaults: no directory listing on open
    (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``), retries, and for ``http(s)`` URLs
    no probing of side-car files of other extensions. Any input (a local VRT may name
    remote files) gets the endpoints, region, profile and anonymous access.
    ``storage.gdal_options`` override all of these.

    Example:
        >>> cfg = StorageConfig(endpoint="http://127.0.0.1:9000", allow_http=True)
        >>> opts = gdal_options("s3://b/t1.tif", cfg)
        >>> opts["AWS_S3_ENDPOINT"], opts["AWS_HTTPS"], opts["AWS_VIRTUAL_HOSTING"]
        ('127.0.0.1:9000', 'NO', 'FALSE')
    """
    source = Source.parse(path)
    storage = storage or StorageConfig()
    opts: dict[str, str] = {}
    if storage.endpoint:
        parts = urlsplit(storage.endpoint)
        opts["AWS_S3_ENDPOINT"] = parts.netloc
        opts["AWS_HTTPS"] = "NO" if parts.scheme.lower() == "http" else "YES"
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"  # path-style URLs: custom endpoints rarely have bucket DNS names
    if storage.gs_endpoint:
        opts["CPL_GS_ENDPOINT"] = storage.gs_endpoint.rstrip("/") + "/"  # GDAL appends bucket/key
    if storage.region:
        opts["AWS_REGION"] = storage.region
    if storage.profile:
        opts["AWS_PROFILE"] = storage.profile
    if storage.anonymous:
        opts["AWS_NO_SIGN_REQUEST"] = "YES"
        opts["GS_NO_SIGN_REQUEST"] = "YES"
    if source.remote:
        opts["GDAL_DISABLE_READDIR_ON_OPEN"] = "EMPTY_DIR"
        opts["GDAL_HTTP_MAX_RETRY"] = str(storage.max_retry)
        opts["GDAL_HTTP_RETRY_DELAY"] = repr(storage.retry_delay)
        url = urlsplit(source.url)
        suffix = PurePosixPath(url.path).suffix
        if url.scheme.lower() in ("http", "https") and suffix:
            opts["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] = suffix
    for item in storage.gdal_options:
        key, value = item.split("=", 1)
        opts[key] = value
    return opts


@contextlib.contextmanager
def raster_env(path: str | os.PathLike[str] | Source, storage: StorageConfig | None) -> Iterator[None]:
    """GDAL's options for ``path`` while the block runs; nothing for a local file without ``storage``.

    Enter it where the pixels are read (inside the task on the worker): GDAL reads
    its options at open and at every read of a remote file.
    """
    opts = gdal_options(path, storage)
    if not opts:
        yield
        return
    with rasterio.Env(**opts):
        yield


@contextlib.contextmanager
def open_raster(path: str | os.PathLike[str] | Source, storage: StorageConfig | None = None) -> Iterator[DatasetReader]:
    """Open an input raster (local, URL or ``/vsi...``) with its GDAL options held while open.

    The one opener of the commands that read scenes (``run``, ``plan``, ``batch``,
    ``compare``, ``score``, ``stack``). Errors are rasterio's; map them with
    :func:`~s2c_batch.pipeline.inputs.remote_errors.remote_input_error`.
    """
    source = Source.parse(path)
    with raster_env(source, storage), rasterio.open(source.gdal_path) as src:
        yield src
