"""An output folder: refuse, resume or overwrite; its lock; the block ledger.

The layout is :mod:`~s2c_batch.pipeline.output.layout`'s; in a folder the block ledger is
``.s2c/blocks.done``, one ``row col`` line per block whose write succeeded. The lock and
the "a run is here" rule are :mod:`~s2c_batch.pipeline.output.lock`'s, as for a prefix on
object storage. Only files of s2c-batch's own names are ever removed by ``--overwrite``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError, OutputExistsError
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.layout import FIT_FILE, PRODUCT_FILES, RUN_JSON, STATE_DIR, STORE
from s2c_batch.pipeline.output.location import LocalLocation

log = logging.getLogger(__name__)

__all__ = ["FIT_FILE", "PRODUCT_FILES", "RUN_JSON", "STATE_DIR", "STORE", "BlockLedger", "clear_products",
           "has_run", "holds_products", "locked", "prepare", "remove_empty"]


def has_run(out: Path) -> bool:
    """True when the folder holds a run (:func:`~s2c_batch.pipeline.output.lock.has_run`)."""
    return lock.has_run(LocalLocation(out))


def holds_products(out: Path) -> bool:
    """True when the folder holds the store or a COG (:func:`~s2c_batch.pipeline.output.lock.holds_products`)."""
    return lock.holds_products(LocalLocation(out))


def prepare(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready: create it, or check what an existing one allows.

    Raises:
        OutputLockedError: a live run holds the folder.
        OutputExistsError: a previous run is there and neither flag was given.
        OutputError: the folder cannot be created or written.
    """
    if resume and overwrite:
        raise OutputError("--resume and --overwrite exclude each other; pick one")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} exists and is not a directory; choose another path")
    location = LocalLocation(out)
    holder = lock.live_lock_holder(location)
    if holder is not None:
        raise lock.locked_error(location, holder)
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
    """Hold ``out/.s2c/lock`` for the duration (:func:`~s2c_batch.pipeline.output.lock.locked`).

    Raises:
        OutputLockedError: a live process holds the lock.
    """
    with lock.locked(LocalLocation(out)):
        yield


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
