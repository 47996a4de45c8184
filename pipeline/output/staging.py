"""Local scratch disk for files built before they are placed at an object-store location.

Object storage has no rename: a file product (a COG, the quicklook, the STAC item) is
built on the machine's local scratch disk (Dask's ``temporary-directory``, else the
system's) and uploaded, and the object appears only when its upload completes
(:meth:`~s2c_batch.pipeline.output.objects.ObjectLocation.staged`). In a folder the file
is written under a temporary name beside its final one and renamed
(:meth:`~s2c_batch.pipeline.output.folder.FolderLocation.staged`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def scratch_dir() -> str | None:
    """Dask's ``temporary-directory`` (a worker's local scratch disk) when set, else the system's."""
    import dask

    value = dask.config.get("temporary-directory", None)
    return str(value) if value else None


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A new folder on local scratch disk (:func:`scratch_dir`), removed with all it holds afterwards.

    Args:
        prefix: the folder's name prefix (``s2c-stage-``).
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_dir()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
