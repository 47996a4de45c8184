"""An ``--out`` on object storage: its errors, lock and block ledger (no rename, no append).

The counterpart of :mod:`~s2c_batch.pipeline.output.folder` for an
:class:`~s2c_batch.pipeline.output.location.ObjectLocation`, with the same layout and rules:

- ``.s2c/lock`` is created with ``If-None-Match: *`` (``ifGenerationMatch=0`` on ``gs://``;
  a second run's create fails), holds the pid and host of its run, and is removed when the
  run ends; a lock of a dead process of this host is stale and replaced, one of another host
  is taken as alive.
- the ledger is one empty object per finished block, ``.s2c/blocks/ROW_COL`` (an append
  to one object does not exist; a PUT of a new key is atomic).
- :func:`check_writable` probes the prefix before any work, so a missing bucket, bad
  credentials or an unreachable endpoint is an :class:`OutputError` (exit 4) naming the URL
  and the fix.
"""

from __future__ import annotations

import logging

from s2c_batch.pipeline.errors import OutputError, OutputExistsError
from s2c_batch.pipeline.output.layout import FIT_FILE, PRODUCT_FILES, RUN_JSON, STATE_DIR, STORE
from s2c_batch.pipeline.output.location import ObjectLocation
from s2c_batch.pipeline.output.lock import has_run, live_lock_holder, locked_error

log = logging.getLogger(__name__)

LEDGER_PREFIX = ".s2c/blocks"
PROBE = ".s2c/.write-test"


#: Per scheme: what to check when the credentials are refused, and which settings name the endpoint.
_CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or storage.profile",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS (a service-account or application-default credentials file) or the "
          "machine's service account",
}
_ENDPOINT = {"s3": ("AWS", "storage.endpoint / AWS_ENDPOINT_URL"),
             "gs": ("Google Cloud Storage", "storage.gs_endpoint / STORAGE_EMULATOR_HOST")}


def storage_fix(location: ObjectLocation, exc: BaseException) -> str:
    """What a failure under ``location`` (obstore's on S3, gcsfs's on ``gs://``) most likely means, and its fix."""
    text = str(exc)
    kind = _gcs_failure(exc) if location.on_gcs else _s3_failure(exc)
    if kind == "bucket":
        return f"the bucket {location.bucket!r} does not exist: create it or correct the URL"
    if kind == "credentials":
        return (f"the credentials were refused: check {_CREDENTIALS[location.scheme]}, and that they may write "
                "this prefix")
    if kind == "endpoint":
        default, settings = _ENDPOINT[location.scheme]
        endpoint = (location.storage.gs_endpoint if location.on_gcs else location.storage.endpoint) or default
        return f"the endpoint {endpoint} cannot be reached: check {settings} and the network"
    return f"the storage answered: {text.splitlines()[0][:300] if text else type(exc).__name__}"


def _s3_failure(exc: BaseException) -> str | None:
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


def _gcs_failure(exc: BaseException) -> str | None:
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


def output_error(location: ObjectLocation, key: str, exc: BaseException) -> OutputError:
    """An obstore failure on ``key`` of ``--out`` ``location`` as an :class:`OutputError` naming the URL and the fix."""
    return OutputError(f"--out {location.url!r}: writing {location.key_url(key)!r} failed; "
                       f"{storage_fix(location, exc)}")


def check_writable(location: ObjectLocation) -> None:
    """Write and remove a probe object under the prefix.

    Raises:
        OutputError: the bucket is missing, the credentials are refused or the endpoint is unreachable.
    """
    try:
        location.write(PROBE, b"ok")
        location.delete(PROBE)
    except Exception as exc:
        raise output_error(location, PROBE, exc) from exc


def prepare(location: ObjectLocation, *, resume: bool, overwrite: bool) -> None:
    """Check, before any work, that the prefix is writable and what a previous run there allows.

    Raises:
        OutputError: the bucket is missing, credentials refused, the endpoint unreachable,
            or both flags given.
        OutputLockedError: a live run holds the prefix.
        OutputExistsError: a previous run is there and neither flag was given.
    """
    if resume and overwrite:
        raise OutputError("--resume and --overwrite exclude each other; pick one")
    check_writable(location)
    holder = live_lock_holder(location)
    if holder is not None:
        raise locked_error(location, holder)
    if has_run(location) and not (resume or overwrite):
        raise OutputExistsError(
            f"--out {location.url!r} already holds a run; pass --resume to finish it or "
            "--overwrite to replace it"
        )


def clear_products(location: ObjectLocation) -> None:
    """Remove what a previous run wrote under the prefix (only s2c-batch's own names; keeps the lock).

    ``run.json`` goes first, so no moment shows a ``complete`` record beside partial products.
    """
    location.delete(RUN_JSON)
    location.delete_prefix(STORE)
    for name in PRODUCT_FILES:
        location.delete(name)
    location.delete_prefix(LEDGER_PREFIX)
    location.delete(f"{STATE_DIR}/{FIT_FILE}")


class ObjectLedger:
    """The blocks whose write succeeded: one empty object ``.s2c/blocks/ROW_COL`` each.

    The same interface as :class:`~s2c_batch.pipeline.output.folder.BlockLedger`.
    """

    def __init__(self, location: ObjectLocation) -> None:
        self.location = location

    @staticmethod
    def key(index: tuple[int, int]) -> str:
        """The ledger object of block ``index``."""
        return f"{LEDGER_PREFIX}/{index[0]}_{index[1]}"

    def done(self) -> set[tuple[int, int]]:
        """Blocks recorded as written (malformed names are ignored)."""
        blocks = set()
        for key in self.location.list(LEDGER_PREFIX):
            parts = key.rsplit("/", 1)[-1].split("_")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                blocks.add((int(parts[0]), int(parts[1])))
        return blocks

    def add(self, index: tuple[int, int]) -> None:
        """Record one block (one PUT: it exists once this returns).

        Raises:
            OutputError: the object cannot be written.
        """
        try:
            self.location.write(self.key(index), b"")
        except Exception as exc:
            raise output_error(self.location, self.key(index), exc) from exc

    def rewrite(self, blocks: set[tuple[int, int]]) -> None:
        """Make the ledger hold exactly ``blocks``: add the missing, remove the others.

        Raises:
            OutputError: an object cannot be written or removed.
        """
        have = self.done()
        try:
            for index in sorted(blocks - have):
                self.location.write(self.key(index), b"")
            for index in sorted(have - blocks):
                self.location.delete(self.key(index))
        except Exception as exc:
            raise output_error(self.location, LEDGER_PREFIX, exc) from exc
