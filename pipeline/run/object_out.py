"""An ``--out`` on object storage: its errors, lock and block ledger (no rename, no append).

The counterpart of :mod:`~s2c_batch.pipeline.run.outdir` for an
:class:`~s2c_batch.pipeline.run.location.ObjectLocation`, with the same layout and rules:

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

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from s2c_batch.pipeline.errors import OutputError, OutputExistsError, OutputLockedError
from s2c_batch.pipeline.run.location import ObjectLocation
from s2c_batch.pipeline.run.outdir import FIT_FILE, PRODUCT_FILES, RUN_JSON, STATE_DIR, STORE

log = logging.getLogger(__name__)

LOCK = ".s2c/lock"
LEDGER_PREFIX = ".s2c/blocks"
PROBE = ".s2c/.write-test"


def storage_fix(location: ObjectLocation, exc: BaseException) -> str:
    """What a failure under ``location`` (obstore's on S3, gcsfs's on ``gs://``) most likely means, and its fix."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(exc)
    if location.on_gcs:
        return gcs_fix(location, exc)
    if "NoSuchBucket" in text:
        return f"the bucket {location.bucket!r} does not exist: create it or correct the URL"
    if isinstance(exc, (UnauthenticatedError, PermissionDeniedError)) or any(
            code in text for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403")):
        return ("the credentials were refused: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                "or storage.profile, and that they may write this prefix")
    if "error sending request" in text or "Connect" in text or "dns error" in text:
        endpoint = location.storage.endpoint or "AWS"
        return (f"the endpoint {endpoint} cannot be reached: check storage.endpoint / AWS_ENDPOINT_URL "
                "and the network")
    return f"the storage answered: {text.splitlines()[0][:300] if text else type(exc).__name__}"


def gcs_fix(location: ObjectLocation, exc: BaseException) -> str:
    """What a gcsfs failure under a ``gs://`` ``location`` most likely means, and its fix (for messages).

    On a write a ``404`` (``FileNotFoundError``) is a missing bucket; gcsfs raises ``OSError("Forbidden: ...")``
    for a ``403`` and an ``HttpError`` of code ``401`` for refused credentials; aiohttp's connection errors
    name the host that cannot be reached.
    """
    text = str(exc)
    code = getattr(exc, "code", None)
    if isinstance(exc, FileNotFoundError):
        return f"the bucket {location.bucket!r} does not exist: create it or correct the URL"
    if code in (401, 403) or text.startswith("Forbidden") or "Invalid Credentials" in text:
        return ("the credentials were refused: check GOOGLE_APPLICATION_CREDENTIALS (a service-account or "
                "application-default credentials file) or the machine's service account, and that they may "
                "write this prefix")
    if "Cannot connect" in text or "Connect" in text or "Name or service not known" in text:
        endpoint = location.storage.gs_endpoint or "Google Cloud Storage"
        return (f"the endpoint {endpoint} cannot be reached: check storage.gs_endpoint / STORAGE_EMULATOR_HOST "
                "and the network")
    return f"the storage answered: {text.splitlines()[0][:300] if text else type(exc).__name__}"


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


def holds_products(location: ObjectLocation) -> bool:
    """True when the prefix holds the store's metadata or a COG (what ``--overwrite`` protects).

    Asks with HEAD requests: a COG is not downloaded to learn that it is there.
    """
    return any(location.exists(key) for key in (f"{STORE}/zarr.json", *PRODUCT_FILES))


def has_run(location: ObjectLocation) -> bool:
    """True when the prefix holds products, or a ``run.json`` not known to have failed.

    The same rule as :func:`~s2c_batch.pipeline.run.outdir.has_run`.
    """
    if holds_products(location):
        return True
    raw = location.read(RUN_JSON)
    if raw is None:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return True
    return not (isinstance(record, dict) and record.get("status") == "failed")


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


def _me() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def live_lock_holder(location: ObjectLocation) -> dict[str, object] | None:
    """The holder of the prefix's lock if it may be alive; a stale lock of a dead local process is removed."""
    raw = location.read(LOCK)
    if raw is None:
        return None
    try:
        holder = json.loads(raw)
    except ValueError:
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        log.warning("removing stale lock %s of dead process %s", location.key_url(LOCK), pid)
        location.delete(LOCK)
        return None
    return holder


def locked_error(location: ObjectLocation, holder: dict[str, object]) -> OutputLockedError:
    """The error of a prefix held by another run."""
    return OutputLockedError(
        f"--out {location.url!r} is locked by another run ({holder}); wait for it, or remove "
        f"{location.key_url(LOCK)!r} if that run is gone"
    )


@contextmanager
def locked(location: ObjectLocation) -> Iterator[None]:
    """Hold ``.s2c/lock`` of the prefix (a conditional create) for the duration.

    Raises:
        OutputLockedError: another live run holds the lock.
        OutputError: the lock cannot be written.
    """
    for _ in range(2):
        try:
            created = location.create(LOCK, json.dumps(_me()).encode())
        except Exception as exc:
            raise output_error(location, LOCK, exc) from exc
        if created:
            break
        holder = live_lock_holder(location)
        if holder is not None:
            raise locked_error(location, holder)
    else:
        raise locked_error(location, live_lock_holder(location) or {})
    try:
        yield
    except BaseException:
        release(location, after_error=True)
        raise
    release(location, after_error=False)


def release(location: ObjectLocation, *, after_error: bool) -> None:
    """Remove the prefix's lock; a lock that cannot be removed (the endpoint is gone) is logged, not raised.

    After an error the run's own error says what failed, and the lock left behind is
    stale for the next run of this host (its process is gone); another host's run is
    told to remove it (:func:`locked_error`). After a complete run the products stand,
    so the lock left behind is a warning naming it.
    """
    try:
        location.delete(LOCK)
    except Exception as exc:
        error = output_error(location, LOCK, exc)
        if after_error:
            log.info("the lock stays behind: removing it failed too (%s)", error)
        else:
            log.warning("the run is complete, but its lock stays behind (%s); remove %r before "
                        "another host's run on this prefix", error, location.key_url(LOCK))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class ObjectLedger:
    """The blocks whose write succeeded: one empty object ``.s2c/blocks/ROW_COL`` each.

    The same interface as :class:`~s2c_batch.pipeline.run.outdir.BlockLedger`.
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
