"""File products built on local disk, then placed at the run's output location.

A local ``--out`` gets the file under a temporary name beside its final one and a
rename (:func:`~s2c_batch.pipeline.atomic.atomic_path`). Object storage has no
rename: the file is built on the machine's local scratch disk (Dask's
``temporary-directory``, else the system's) and uploaded, and the object appears only
when its upload completes (multipart above
:data:`~s2c_batch.pipeline.output.location.PART_SIZE`). Either way a reader never sees
half a file, and the temporaries are gone after success and failure alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.output.location import LocalLocation, ObjectLocation, OutputLocation


def scratch_dir() -> str | None:
    """Dask's ``temporary-directory`` (a worker's local scratch disk) when set, else the system's."""
    import dask

    value = dask.config.get("temporary-directory", None)
    return str(value) if value else None


def upload(location: ObjectLocation, key: str, local: Path) -> None:
    """Upload ``local`` to ``key`` under ``location``.

    Raises:
        OutputError: the upload failed (names the object's URL and the likely fix).
    """
    from s2c_batch.pipeline.output.objects import output_error

    try:
        location.upload(key, local)
    except Exception as exc:
        raise output_error(location, key, exc) from exc


@contextlib.contextmanager
def staged(location: OutputLocation, key: str, *, what: str) -> Iterator[Path]:
    """Yield a local path to write ``key``'s file to; place it at ``location`` when the block succeeds.

    Args:
        location: the run's output location.
        key: the file's key under it (``quicklook.png``).
        what: what the file is, for the error message (``"quicklook"``).

    Raises:
        OutputError: the local write, the rename or the upload failed.
    """
    if isinstance(location, LocalLocation):
        with atomic_path(location.path(key), what=what) as tmp:
            yield tmp
        return
    assert isinstance(location, ObjectLocation)
    scratch = Path(tempfile.mkdtemp(prefix="s2c-stage-", dir=scratch_dir()))
    try:
        local = scratch / Path(key).name
        with atomic_path(local, what=what) as tmp:  # a full scratch disk reads as a full folder does
            yield tmp
        upload(location, key, local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def href(location: OutputLocation, key: str) -> Path | str:
    """Where ``key`` is: the local file, or the object's URL."""
    if isinstance(location, ObjectLocation):
        return location.key_url(key)
    assert isinstance(location, LocalLocation)
    return location.path(key)


def as_location(out: str | os.PathLike[str] | OutputLocation) -> OutputLocation:
    """``out`` as an output location (a path is a local folder)."""
    return out if isinstance(out, OutputLocation) else LocalLocation(Path(out))
