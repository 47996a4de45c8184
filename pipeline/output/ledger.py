"""The block ledger: which blocks of a run were written, for ``--resume``.

In a folder, :class:`BlockLedger` is one file, ``.s2c/blocks.done``: a ``row col`` line
per block, appended and fsynced when the block's write task returns. On object storage,
which has no append, :class:`ObjectLedger` is one empty object per block,
``.s2c/blocks/ROW_COL`` (a ``PUT`` of a new key is atomic). Both have the interface of
:class:`~s2c_batch.pipeline.output.location.Ledger`; a location gives its own
(:meth:`~s2c_batch.pipeline.output.location.Location.ledger`).
"""

from __future__ import annotations

import os
from pathlib import Path

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.layout import LEDGER_FILE, LEDGER_PREFIX
from s2c_batch.pipeline.output.location import Location


class BlockLedger:
    """Append-only record of blocks whose region write succeeded (a folder's ``.s2c/blocks.done``).

    Each line is ``row col`` and a newline, appended and fsynced when the block's write task
    returns. A line without its newline (the process died while appending) is ignored.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LEDGER_FILE

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


class ObjectLedger:
    """The blocks whose write succeeded: one empty object ``.s2c/blocks/ROW_COL`` each (object storage)."""

    def __init__(self, location: Location) -> None:
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
            raise self.location.write_error(self.key(index), exc) from exc

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
            raise self.location.write_error(LEDGER_PREFIX, exc) from exc
