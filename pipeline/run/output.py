"""A run's ``--out`` as the run path holds it: a folder, or a prefix on object storage.

The run path passes ``Out`` around, and tasks take what :func:`at` gives: a path
for a folder, an :class:`~s2c_batch.pipeline.run.location.ObjectLocation` (secret-free,
picklable) for object storage. The rules that differ (the block ledger, the lock)
live in :mod:`~s2c_batch.pipeline.run.outdir` and :mod:`~s2c_batch.pipeline.run.object_out`;
this module only picks between them, once, and checks what ``complete`` promises.
"""

from __future__ import annotations

import os
from pathlib import Path

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.run import object_out, outdir, store
from s2c_batch.pipeline.run.location import ObjectLocation

#: A run's output: a local (or shared) folder, or a prefix on object storage.
Out = Path | ObjectLocation

#: The block ledger of either kind (``done``, ``add``, ``rewrite``).
Ledger = outdir.BlockLedger | object_out.ObjectLedger


def at(out: Out, key: str) -> Path | ObjectLocation:
    """The file or object ``key`` (``/``-separated) under ``out``, as tasks and writers take it."""
    return out.child(key) if isinstance(out, ObjectLocation) else out / key


def ledger_of(out: Out) -> Ledger:
    """The run's block ledger: a file of lines, or one object per block."""
    return object_out.ObjectLedger(out) if isinstance(out, ObjectLocation) else outdir.BlockLedger(out)


def exists(out: Out, key: str) -> bool:
    """Whether ``key`` is there (a file or folder; an object or a prefix holding some)."""
    return out.exists(key) if isinstance(out, ObjectLocation) else (out / key).exists()


def delete(out: Out, key: str) -> None:
    """Remove the file or object ``key``; a missing one is no error."""
    if isinstance(out, ObjectLocation):
        out.delete(key)
    else:
        (out / key).unlink(missing_ok=True)


def name(path: str | os.PathLike[str] | ObjectLocation) -> str:
    """A folder's or file's name as the user reads it, or an object-store location's URL."""
    return path.url if isinstance(path, ObjectLocation) else str(path)


def where(out: Out) -> Path | str:
    """What a run reports as its output: the folder, or the prefix's URL."""
    return out.url if isinstance(out, ObjectLocation) else out


def holds_products(out: Out) -> bool:
    """True when ``out`` holds the store's metadata or a COG (what ``--overwrite`` protects)."""
    return object_out.holds_products(out) if isinstance(out, ObjectLocation) else outdir.holds_products(out)


def verify_products(out: Out, pair: ScenePair, plan: TilePlan, ledger: Ledger, products: dict[str, str]) -> None:
    """Check what ``complete`` promises: every block written, georeferencing equal to t1's.

    Raises:
        OutputError: a block is missing or a product does not match the output grid.
    """
    missing = plan.n_blocks - len(ledger.done())
    if missing:
        raise OutputError(f"{missing} block(s) are not recorded as written; run again with --resume")
    store_path = at(out, outdir.STORE)
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
