"""A run's output as a folder or an object-store prefix: what callers outside the run need of it.

``batch`` and ``compare`` decide from what a previous run left (``run.json``, products,
the store) and name or nest outputs before calling the runner; each helper here does
that for an :data:`Out`, a local :class:`~pathlib.Path` or an
:class:`~s2c_batch.pipeline.run.location.ObjectLocation`, by the rules of
:mod:`~s2c_batch.pipeline.run.outdir` and :mod:`~s2c_batch.pipeline.run.object_out`.

Example:
    >>> from pathlib import Path
    >>> child(Path("night"), "31UFS"), name(child(ObjectLocation("b", "night"), "31UFS"))
    (PosixPath('night/31UFS'), 's3://b/night/31UFS')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.run import object_out, outdir
from s2c_batch.pipeline.run.location import LocalLocation, ObjectLocation, open_location
from s2c_batch.pipeline.run.runlog import RunLog
from s2c_batch.pipeline.run.store import StorePath

#: An output folder or an object-store prefix.
Out = Path | ObjectLocation


def open_out(out: str | os.PathLike[str], storage: StorageConfig | None = None) -> Out:
    """``out`` as a folder or an ``s3://`` prefix (its ``storage`` resolved as the runner resolves it).

    Raises:
        OutputError: a URL of a scheme not supported for outputs, or without a bucket (exit 4).
        ConfigError: ``AWS_ENDPOINT_URL`` is unusable (exit 2).
    """
    location = open_location(out, storage)
    return location if isinstance(location, ObjectLocation) else Path(out)


def name(out: Out) -> str:
    """The folder, or the prefix's URL: what ``run_change_detection`` takes as ``out``."""
    return out.url if isinstance(out, ObjectLocation) else str(out)


def child(out: Out, key: str) -> Out:
    """The output ``key`` under ``out`` (a sub-folder, or a key under the prefix)."""
    return out.child(key) if isinstance(out, ObjectLocation) else out / key


def store_of(out: Out) -> StorePath:
    """The run's Zarr store (``change.zarr``) as the store functions and tasks take it."""
    return out.child(outdir.STORE) if isinstance(out, ObjectLocation) else out / outdir.STORE


def read_record(out: Out) -> dict[str, Any] | None:
    """The run's ``run.json``, or ``None`` when there is none or it cannot be read."""
    return RunLog.read(child(out, outdir.RUN_JSON))


def exists(out: Out, key: str) -> bool:
    """Whether the product ``key`` (a file, or the store) is there."""
    return out.exists(key) if isinstance(out, ObjectLocation) else (out / key).exists()


def has_run(out: Out) -> bool:
    """Whether ``out`` holds a run (products, or a ``run.json`` not known to have failed)."""
    return object_out.has_run(out) if isinstance(out, ObjectLocation) else outdir.has_run(out)


def write(out: Out, key: str, data: bytes) -> None:
    """Write ``key`` whole (a local atomic rename, or one PUT).

    Raises:
        OutputError: it cannot be written; the message names the file or URL and the fix.
    """
    if not isinstance(out, ObjectLocation):
        LocalLocation(out).write(key, data)
        return
    try:
        out.write(key, data)
    except Exception as exc:
        raise object_out.output_error(out, key, exc) from exc
