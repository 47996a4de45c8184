"""The output directory: refuse, resume or overwrite; a lock; the block ledger.

Layout of ``--out DIR``::

    change.zarr/          the Zarr v3 store (written block by block)
    change_prob.tif ...   COGs (appear only when complete)
    run.json              status, fingerprint, config, inputs, timings
    .s2c/lock             pid and host of the run writing here
    .s2c/blocks.done      one "row col" line per block whose write succeeded
    .s2c/fit.json         a fitted comparator's parameters (resume predicts with them)

Only files of these names are ever removed by ``--overwrite``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError, OutputExistsError, OutputLockedError

log = logging.getLogger(__name__)

STATE_DIR = ".s2c"
RUN_JSON = "run.json"
STORE = "change.zarr"
FIT_FILE = "fit.json"
PRODUCT_FILES = ("change_prob.tif", "change_mask.tif", "class_t1.tif", "class_t2.tif")


def has_run(out: Path) -> bool:
    """True when ``out`` holds a run: products, or the record of a run not known to have failed.

    A ``run.json`` that says ``failed`` beside no product (a run stopped by an unusable
    input) protects nothing: running again, without ``--resume``, starts afresh.
    """
    if holds_products(out):
        return True
    if not (out / RUN_JSON).is_file():
        return False
    try:
        record = json.loads((out / RUN_JSON).read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(record, dict) and record.get("status") == "failed")


def holds_products(out: Path) -> bool:
    """True when ``out`` holds the store or a COG (what ``--overwrite`` protects).

    A store folder without its metadata (what a block task still running when its run
    stopped can leave behind the removed store) is no product.
    """
    return (out / STORE / "zarr.json").exists() or any((out / n).exists() for n in PRODUCT_FILES)


def prepare(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready: create it, or check what an existing one allows.

    Raises:
        OutputExistsError: a previous run is there and neither flag was given.
        OutputError: the folder cannot be created or written.
    """
    if resume and overwrite:
        raise OutputError("--resume and --overwrite exclude each other; pick one")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} exists and is not a directory; choose another path")
    holder = live_lock_holder(out)
    if holder is not None:
        raise _locked_error(out, holder)
    if has_run(out) and not (resume or overwrite):
        raise OutputExistsError(
            f"--out {str(out)!r} already holds a run; pass --resume to finish it or "
            "--overwrite to replace it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / STATE_DIR).mkdir(exist_ok=True)
        probe = out / STATE_DIR / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"--out {str(out)!r} is not writable ({exc.strerror or exc})") from exc


def clear_products(out: Path) -> None:
    """Remove what a previous run wrote (only s2c-batch's own names; keeps the lock)."""
    shutil.rmtree(out / STORE, ignore_errors=True)
    for name in (RUN_JSON, *PRODUCT_FILES):
        (out / name).unlink(missing_ok=True)
    (out / STATE_DIR / "blocks.done").unlink(missing_ok=True)
    (out / STATE_DIR / FIT_FILE).unlink(missing_ok=True)


def remove_empty(out: Path) -> None:
    """Remove ``out`` when it holds nothing but an empty state folder (a run that wrote nothing)."""
    state = out / STATE_DIR
    if state.is_dir() and not any(state.iterdir()):
        state.rmdir()
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.s2c/lock`` for the duration; clear a stale lock of a dead process.

    Raises:
        OutputLockedError: a live process holds the lock.
    """
    lock = out / STATE_DIR / "lock"
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = live_lock_holder(out)
            if holder is None:
                continue
            raise _locked_error(out, holder) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def live_lock_holder(out: Path) -> dict[str, object] | None:
    """The holder of ``out``'s lock if it is alive; a stale lock of a dead process is removed.

    A lock written on another host is taken as alive (its process cannot be checked).
    """
    lock = out / STATE_DIR / "lock"
    if not lock.exists():
        return None
    holder = _read_lock(lock) or {}
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1))):  # type: ignore[call-overload]
        log.warning("removing stale lock %s of dead process %s", lock, holder.get("pid"))
        lock.unlink(missing_ok=True)
        return None
    return holder


def _locked_error(out: Path, holder: dict[str, object]) -> OutputLockedError:
    lock = out / STATE_DIR / "lock"
    return OutputLockedError(
        f"--out {str(out)!r} is locked by another run ({holder}); wait for it, or remove "
        f"{str(lock)!r} if that run is gone"
    )


def _read_lock(lock: Path) -> dict[str, object] | None:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class BlockLedger:
    """Append-only record of blocks whose region write succeeded.

    Each line is ``row col`` and a newline, appended and fsynced when the block's write task
    returns. A line without its newline (the process died while appending) is ignored.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_DIR / "blocks.done"

    def done(self) -> set[tuple[int, int]]:
        """Blocks recorded as written (torn or malformed lines are ignored)."""
        if not self.path.exists():
            return set()
        blocks = set()
        for line in self.path.read_text().split("\n")[:-1]:  # the last piece is unterminated
            parts = line.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                blocks.add((int(parts[0]), int(parts[1])))
        return blocks

    def add(self, index: tuple[int, int]) -> None:
        """Record one block, flushed to disk before returning.

        Raises:
            OutputError: the ledger cannot be written (a full disk).
        """
        try:
            with open(self.path, "a") as f:
                f.write(f"{index[0]} {index[1]}\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise OutputError(
                f"recording block {index} in {str(self.path)!r} failed ({exc.strerror or exc}); free "
                "space or fix the output folder, then run again with --resume"
            ) from exc

    def rewrite(self, blocks: set[tuple[int, int]]) -> None:
        """Replace the ledger with exactly ``blocks`` (atomically; drops torn lines).

        Raises:
            OutputError: the ledger cannot be written.
        """
        with atomic_path(self.path, what="block ledger", sync=True, failure="rewriting {path} failed") as tmp:
            tmp.write_text("".join(f"{r} {c}\n" for r, c in sorted(blocks)))
