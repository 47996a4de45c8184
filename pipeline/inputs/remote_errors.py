"""Why a remote input could not be read, in words that say what to fix.

GDAL reports a failed open or read of ``/vsis3/``, ``/vsigs/`` or ``/vsicurl/`` as a
``RasterioIOError`` whose chain of causes holds the precise GDAL error
(``CPLE_AWSObjectNotFoundError``, ``CPLE_AWSSignatureDoesNotMatchError``, ...) and
the server's message. :func:`remote_failure` sorts these into the cases a user can act
on and returns an :class:`~s2c_batch.pipeline.errors.InputError` (exit 3) naming the
URL and the likely fix for its scheme (S3's credentials and endpoint, Google's service
account, or a plain web server's URL and login); it is a plain, picklable error, so it
also reaches the client whole from a worker task.
"""

from __future__ import annotations

import os

from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.damage import gdal_messages
from s2c_batch.pipeline.inputs.source import Source, redact

#: (case, GDAL error type names, lower-case message fragments, the fix). First match wins.
_CASES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("the server does not support HTTP range requests", (), ("range downloading not supported",),
     "serve the file from object storage or a web server that answers Range requests "
     "(nginx, Apache, S3), or download it and give the local path"),
    ("no credentials were found", (), ("configuration options not defined", "no valid credentials"),
     "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or an instance role) in the "
     "environment of this machine and of every Dask worker, or --set storage.anonymous=true for a public bucket"),
    ("the bucket does not exist", ("CPLE_AWSBucketNotFoundError",), ("bucket does not exist",),
     "check the bucket name, and that storage.endpoint (or AWS_ENDPOINT_URL) and storage.region "
     "point at the storage that holds it"),
    ("the object does not exist", ("CPLE_AWSObjectNotFoundError",),
     ("key does not exist", "response code: 404", "nosuchkey"),
     "check the URL (bucket, key, upper/lower case)"),
    ("the credentials were rejected", ("CPLE_AWSSignatureDoesNotMatchError", "CPLE_AWSInvalidCredentialsError",
                                       "CPLE_AWSAccessDeniedError"),
     ("signature we calculated does not match", "access key id you provided does not exist",
      "invalidaccesskeyid", "access denied", "accessdenied", "response code: 403", "response code: 401",
      "expiredtoken", "security token included in the request is invalid"),
     "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, storage.profile) on this machine "
     "and on every Dask worker, and that they may read this object"),
    ("the server cannot be reached", (),
     ("failed to connect", "could not resolve host", "couldn't connect", "connection refused",
      "timed out", "timeout was reached", "couldn't resolve"),
     "check that the server is up and that storage.endpoint (or AWS_ENDPOINT_URL) names it, "
     "including the port, on this machine and on every Dask worker"),
)


#: The fixes of ``gs://`` inputs where they differ from S3's (GDAL's /vsigs/ credentials and endpoint).
_GS_FIXES = {
    "no credentials were found":
        "set GOOGLE_APPLICATION_CREDENTIALS to a service-account file (or run on an instance with a service "
        "account) on this machine and on every Dask worker, or --set storage.anonymous=true for a public bucket",
    "the credentials were rejected":
        "check GOOGLE_APPLICATION_CREDENTIALS (the service account) on this machine and on every Dask worker, "
        "and that it may read this object",
    "the server cannot be reached":
        "check that the server is up and that storage.gs_endpoint (or STORAGE_EMULATOR_HOST) names it, "
        "including the port, on this machine and on every Dask worker",
    "the object does not exist":
        "check the URL (bucket, key, upper/lower case), and that storage.gs_endpoint (or "
        "STORAGE_EMULATOR_HOST) names the storage that holds it",
}


#: The cases of ``http(s)://`` inputs (GDAL's /vsicurl/), where they differ from S3's: a plain web
#: server has no bucket, no AWS credentials and no ``storage.endpoint``. (case, fix) by S3's case.
_HTTP_CASES = {
    "the credentials were rejected": (
        "the web server refused the request",
        "check that the URL names a public file, or that a signed URL is whole (its query) and has not expired; "
        "a server that asks for a login takes GDAL_HTTP_USERPWD, GDAL_HTTP_BEARER or GDAL_HTTP_HEADERS from the "
        "environment of this machine and of every Dask worker (never from the config)"),
    "no credentials were found": (
        "the web server asks for a login",
        "set GDAL_HTTP_USERPWD, GDAL_HTTP_BEARER or GDAL_HTTP_HEADERS in the environment of this machine and of "
        "every Dask worker, or give a signed URL"),
    "the object does not exist": ("the object does not exist", "check the URL (its path, upper/lower case)"),
    "the server cannot be reached": (
        "the server cannot be reached",
        "check that the server is up and the URL's host and port, on this machine and on every Dask worker"),
}


def remote_failure(label: str, path: str | os.PathLike[str], exc: BaseException) -> InputError | None:
    """The input error for a failed open or read of a remote ``path``; ``None`` when the cause is unknown.

    Args:
        label: what the file is, for the message (``t1 scene``, ``band file``).
        path: the input as the user gave it (a URL); its query and password are not shown.
        exc: the error rasterio raised.
    """
    messages = gdal_messages(exc)
    names = _type_names(exc)
    text = " ".join(messages + [str(exc)]).lower()
    scheme = Source.parse(path).url_scheme
    for case, types, fragments, fix in _CASES:
        if names & set(types) or any(f in text for f in fragments):
            detail = "; ".join(m.rstrip(".") for m in messages) or str(exc)
            if scheme == "gs":
                fix = _GS_FIXES.get(case, fix)
            elif scheme in ("http", "https"):
                case, fix = _HTTP_CASES.get(case, (case, fix))
            return InputError(f"{label} {redact(path)!r} cannot be read: {case} ({detail}). Fix: {fix}")
    return None


def remote_input_error(label: str, path: str | os.PathLike[str], exc: BaseException) -> InputError:
    """:func:`remote_failure`, or a generic input error naming the URL and GDAL's messages."""
    known = remote_failure(label, path, exc)
    if known is not None:
        return known
    detail = "; ".join(m.rstrip(".") for m in gdal_messages(exc)) or str(exc)
    return InputError(
        f"{label} {redact(path)!r} cannot be opened as a raster ({detail}); check the URL and that it "
        "names a GeoTIFF/COG or another GDAL-readable file"
    )


def _type_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        names.add(type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    return names
