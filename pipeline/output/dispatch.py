"""A run's ``--out`` as a folder or an object-store prefix: one dispatch for every caller.

The run path, ``batch`` and ``compare`` pass an :data:`Out` around, a local
:class:`~pathlib.Path` or an :class:`~s2c_batch.pipeline.output.location.ObjectLocation`,
and tasks take what :func:`child` gives (a path, or a secret-free, picklable
location). The rules that differ (the block ledger, the lock, what protects a run)
live in :mod:`~s2c_batch.pipeline.output.folder` and :mod:`~s2c_batch.pipeline.output.objects`;
this module only picks between them, once, and checks what ``complete`` promises.

Example:
    >>> from pathlib import Path
    >>> child(Path("night"), "31UFS"), name(child(ObjectLocation("b", "night"), "31UFS"))
    (PosixPath('night/31UFS'), 's3://b/night/31UFS')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output import folder as outdir
from s2c_batch.pipeline.output import lock, store
from s2c_batch.pipeline.output import objects as object_out
from s2c_batch.pipeline.output.location import LocalLocation, ObjectLocation, OutputLocation, open_location
from s2c_batch.pipeline.output.runlog import RunLog
from s2c_batch.pipeline.output.store import StorePath

#: A run's output: a local (or shared) folder, or a prefix on object storage.
Out = Path | ObjectLocation

#: The block ledger of either kind (``done``, ``add``, ``rewrite``).
Ledger = outdir.BlockLedger | object_out.ObjectLedger


def open_out(out: str | os.PathLike[str], storage: StorageConfig | None = None) -> Out:
    """``out`` as a folder or an ``s3://``/``gs://`` prefix (its ``storage`` resolved as the runner resolves it).

    Raises:
        OutputError: a URL of a scheme not supported for outputs, or without a bucket (exit 4).
        ConfigError: ``AWS_ENDPOINT_URL`` is unusable (exit 2).
    """
    location = open_location(out, storage)
    return location if isinstance(location, ObjectLocation) else Path(out)


def name(out: str | os.PathLike[str] | ObjectLocation) -> str:
    """A folder's or file's name as the user reads it, or an object-store location's URL."""
    return out.url if isinstance(out, ObjectLocation) else str(out)


def where(out: Out) -> Path | str:
    """What a run reports as its output: the folder, or the prefix's URL."""
    return out.url if isinstance(out, ObjectLocation) else out


def child(out: Out, key: str) -> Out:
    """The file, folder or object ``key`` (``/``-separated) under ``out``, as tasks and writers take it."""
    return out.child(key) if isinstance(out, ObjectLocation) else out / key


def store_of(out: Out) -> StorePath:
    """The run's Zarr store (``change.zarr``) as the store functions and tasks take it."""
    return child(out, outdir.STORE)


def ledger_of(out: Out) -> Ledger:
    """The run's block ledger: a file of lines, or one object per block."""
    return object_out.ObjectLedger(out) if isinstance(out, ObjectLocation) else outdir.BlockLedger(out)


def read_record(out: Out) -> dict[str, Any] | None:
    """The run's ``run.json``, or ``None`` when there is none or it cannot be read."""
    return RunLog.read(child(out, outdir.RUN_JSON))


def exists(out: Out, key: str) -> bool:
    """Whether ``key`` is there (a file or folder; an object or a prefix holding some)."""
    return location(out).exists(key)


def delete(out: Out, key: str) -> None:
    """Remove the file or object ``key``; a missing one is no error."""
    location(out).delete(key)


def location(out: Out) -> OutputLocation:
    """``out`` behind the operations both kinds share (:class:`~s2c_batch.pipeline.output.location.OutputLocation`)."""
    return out if isinstance(out, ObjectLocation) else LocalLocation(out)


def has_run(out: Out) -> bool:
    """Whether ``out`` holds a run (products, or a ``run.json`` not known to have failed)."""
    return lock.has_run(location(out))


def holds_products(out: Out) -> bool:
    """True when ``out`` holds the store's metadata or a COG (what ``--overwrite`` protects)."""
    return lock.holds_products(location(out))


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


def verify_products(out: Out, pair: ScenePair, plan: TilePlan, ledger: Ledger, products: dict[str, str]) -> None:
    """Check what ``complete`` promises: every block written, georeferencing equal to t1's.

    Raises:
        OutputError: a block is missing or a product does not match the output grid.
    """
    missing = plan.n_blocks - len(ledger.done())
    if missing:
        raise OutputError(f"{missing} block(s) are not recorded as written; run again with --resume")
    store_path = store_of(out)
    ds = store.open_products(store_path)
    try:
        if ds.rio.shape != pair.grid.shape or ds.rio.crs != pair.grid.crs or \
                not ds.rio.transform().almost_equals(pair.grid.affine):
            raise OutputError(
                f"{name(store_path)!r} does not carry the input's grid "
                f"({ds.rio.shape}, {ds.rio.crs}); rerun with --overwrite"
            )
    finally:
        ds.close()
    for product, path in products.items():
        if not exists(out, product):
            raise OutputError(f"product {product} was not written to {path!r}; run again with --resume")
