"""Write a file under its final name only when it is complete.

The one mechanism behind every small file (STAC item, quicklook, run.json, the block ledger,
polygons, weights, training state): write to a temporary name beside the
target, rename it over the target with ``os.replace``, remove it on any error.
COGs (:mod:`~s2c_batch.pipeline.run.cog`) need two temporaries and do the same by hand.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from s2c_batch.pipeline.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, what: str, sync: bool = False,
                failure: str = "cannot write {what} {path}") -> Iterator[Path]:
    """Yield a temporary path; rename it onto ``path`` when the block succeeds.

    Args:
        path: the final file.
        what: what the file is, for the error message (e.g. ``"STAC item"``).
        sync: fsync the temporary before the rename, so a crash right after it leaves
            the new content, not an empty file (records a resume decides from).
        failure: the error message's start; ``{what}`` and ``{path}`` (quoted) are filled in.

    Raises:
        OutputError: writing or renaming failed (``{failure} (reason); free space ...``).
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if sync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        start = failure.format(what=what, path=repr(str(final)))
        raise OutputError(
            f"{start} ({exc.strerror or exc}); free space or fix the output folder, then run again with --resume"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
