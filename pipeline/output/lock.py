"""What protects a run's ``--out``, for a folder and a prefix alike: the lock, and "a run is here".

- ``.s2c/lock`` is created only if absent (``O_EXCL`` in a folder, ``If-None-Match: *`` on
  S3, ``ifGenerationMatch=0`` on GCS: :meth:`Location.create`), holds the pid and
  host of its run, and is removed when the run ends. A lock of a dead process of this host
  is stale and replaced; one of another host is taken as alive (its process cannot be
  checked), and the error names the lock to remove when that run is gone.
- ``out`` holds a run when it holds the store's metadata or a COG, or a ``run.json`` not
  known to have failed (a failed run that left no product protects nothing).

:meth:`Location.prepare <s2c_batch.pipeline.output.location.Location.prepare>` and
:meth:`~s2c_batch.pipeline.output.location.Location.claim` apply these rules to a folder and to a prefix.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from s2c_batch.pipeline.errors import OutputLockedError
from s2c_batch.pipeline.output.layout import LOCK, PRODUCT_FILES, RUN_JSON, STORE
from s2c_batch.pipeline.output.location import Location

log = logging.getLogger(__name__)


def holds_products(out: Location) -> bool:
    """True when ``out`` holds the store's metadata or a COG (what ``--overwrite`` protects).

    A store without its metadata (what a block task still running when its run stopped
    can leave behind the removed store) is no product. On object storage each check is a
    HEAD request: a COG is not downloaded to learn that it is there.
    """
    return any(out.exists(key) for key in (f"{STORE}/zarr.json", *PRODUCT_FILES))


def has_run(out: Location) -> bool:
    """True when ``out`` holds products, or a ``run.json`` not known to have failed.

    A ``run.json`` that says ``failed`` beside no product (a run stopped by an unusable
    input) protects nothing: running again, without ``--resume``, starts afresh.
    """
    if holds_products(out):
        return True
    try:
        raw = out.read(RUN_JSON)
    except OSError:  # there, but unreadable: protected
        return True
    if raw is None:
        return False
    try:
        record = json.loads(raw)
    except ValueError:
        return True
    return not (isinstance(record, dict) and record.get("status") == "failed")


def live_lock_holder(out: Location) -> dict[str, object] | None:
    """The holder of ``out``'s lock if it may be alive; a stale lock of a dead process of this host is removed."""
    try:
        raw = out.read(LOCK)
    except OSError:
        raw = b""
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
        log.warning("removing stale lock %s of dead process %s", out.key_url(LOCK), pid)
        out.delete(LOCK)
        return None
    return holder


def locked_error(out: Location, holder: dict[str, object]) -> OutputLockedError:
    """The error of an ``out`` held by another run."""
    return OutputLockedError(
        f"--out {out.url!r} is locked by another run ({holder}); wait for it, or remove "
        f"{out.key_url(LOCK)!r} if that run is gone"
    )


@contextmanager
def locked(out: Location) -> Iterator[None]:
    """Hold ``out``'s lock for the duration (a create that fails when the lock exists).

    Raises:
        OutputLockedError: another live run holds the lock.
        OutputError: the lock cannot be written.
    """
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
    for _ in range(2):
        try:
            created = out.create(LOCK, me)
        except Exception as exc:
            raise out.write_error(LOCK, exc) from exc
        if created:
            break
        holder = live_lock_holder(out)
        if holder is not None:
            raise locked_error(out, holder)
    else:
        raise locked_error(out, live_lock_holder(out) or {})
    try:
        yield
    except BaseException:
        release(out, after_error=True)
        raise
    release(out, after_error=False)


def release(out: Location, *, after_error: bool) -> None:
    """Remove ``out``'s lock; a lock that cannot be removed (the endpoint is gone) is logged, not raised.

    After an error the run's own error says what failed, and the lock left behind is
    stale for the next run of this host (its process is gone); another host's run is
    told to remove it (:func:`locked_error`). After a complete run the products stand,
    so the lock left behind is a warning naming it.
    """
    try:
        out.delete(LOCK)
    except Exception as exc:
        error = out.write_error(LOCK, exc)
        if after_error:
            log.info("the lock stays behind: removing it failed too (%s)", error)
        else:
            log.warning("the run is complete, but its lock stays behind (%s); remove %r before "
                        "another host's run on it", error, out.key_url(LOCK))


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
