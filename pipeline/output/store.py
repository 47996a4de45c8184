"""The ``change.zarr`` product: a georeferenced Zarr v3 group written block by block.

:func:`create_store` writes the metadata, the ``x``/``y`` coordinates and a CF
``spatial_ref`` grid mapping through xarray (``to_zarr(compute=False)``), so
``xarray.open_zarr(path, decode_coords="all")`` plus rioxarray gives the input's
CRS and transform. Each product array has one shard per output block (chunks of
``tiling.chunk_size`` inside), so :func:`write_block` replaces whole shards and
is idempotent: a retried or resumed block rewrites the same bytes, and two
blocks never touch the same shard. A written block always leaves one shard file
per product, even when it is all nodata, so a resumed run can tell a written
block from a lost one (:func:`block_problem`, :func:`store_problem`).

Every function takes the store as a :class:`~s2c_batch.pipeline.output.location.Location`
(a folder, or a prefix such as ``s3://bucket/run/change.zarr``, opened through its
object store's Zarr store), or a local folder's path; a location pickles without
secrets, so it can be a task argument.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr

from s2c_batch.kernels.raster.encode import NODATA
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.storage.clients import storage_errors

#: A Zarr store: a location (a folder or an object-store prefix), or a local folder's path.
StorePath = str | os.PathLike[str] | Location

#: Human-readable meaning of each product array, stored as its ``long_name``.
PRODUCT_DESCRIPTIONS: dict[str, str] = {
    "change_prob": "change probability, round(254 * p); 255 = nodata",
    "change_mask": "binary change (1 = changed, 0 = unchanged); 255 = nodata",
    "class_t1": "class of t1 (index in the vocabulary); 255 = nodata",
    "class_t2": "class of t2 (index in the vocabulary); 255 = nodata",
}


def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of pixel centres ``(y [H], x [W])`` of a north-up grid."""
    a, b, c, d, e, f = grid.transform
    if b != 0 or d != 0:
        raise OutputError(
            f"the output grid is rotated (transform {grid.transform}); Zarr coordinates need a "
            "north-up grid: warp the inputs first (gdalwarp)"
        )
    x = c + a * (np.arange(grid.width) + 0.5)
    y = f + e * (np.arange(grid.height) + 0.5)
    return y, x


def create_store(
    path: StorePath,
    grid: Grid,
    products: Sequence[str],
    *,
    shard: int,
    chunk: int,
    attrs: Mapping[str, Any],
    product_attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Create the Zarr v3 group with empty (all-nodata) product arrays.

    Args:
        path: the store folder (must not exist).
        grid: the output grid.
        products: array names, e.g. ``("change_prob", "change_mask")``.
        shard: shard side = output block side.
        chunk: chunk side inside a shard (divides ``shard``).
        attrs: group attributes (provenance).
        product_attrs: extra attributes per product (e.g. class names).

    Raises:
        OutputError: the folder cannot be written.
    """
    y, x = pixel_centres(grid)
    shape = (grid.height, grid.width)
    data_vars = {}
    for name in products:
        arr = da.full(shape, NODATA, dtype=np.uint8, chunks=(shard, shard))
        extra = dict((product_attrs or {}).get(name, {}))
        data_vars[name] = (("y", "x"), arr, {"long_name": PRODUCT_DESCRIPTIONS.get(name, name), **extra})
    ds = xr.Dataset(data_vars, coords={"y": y, "x": x})
    ds = ds.rio.write_crs(grid.crs_wkt).rio.write_transform(grid.affine)
    ds.attrs.update(attrs)
    cshape = (min(chunk, grid.height), min(chunk, grid.width))
    sshape = _shard_shape(grid, shard, chunk)
    encoding = {
        name: {"chunks": cshape, "shards": sshape, "fill_value": NODATA, "grid_mapping": "spatial_ref"}
        for name in products
    }
    try:
        ds.to_zarr(_zarr_store(path), mode="w-", zarr_format=3, compute=False, encoding=encoding,
                   consolidated=False, write_empty_chunks=True)
    except _write_errors() as exc:
        _raise_if_remote(path, "zarr.json", exc)
        raise OutputError(f"cannot create Zarr store {_name(path)!r}: {exc}") from exc


def write_block(path: StorePath, window: Window, arrays: Mapping[str, np.ndarray], *,
                on_written: Callable[[int, int], None] | None = None) -> None:
    """Write one block of every product (a region write of whole shards).

    Args:
        path: the store folder.
        window: the block core in output-grid coordinates (shard-aligned).
        arrays: product name -> uint8 ``[window.height, window.width]``.
        on_written: called after each product is written, with the products written
            so far and their number.
    """
    rows, cols = window.slices()
    try:
        group = zarr.open_group(_zarr_store(path), mode="r+")
        for n, (name, arr) in enumerate(arrays.items(), 1):
            # An all-nodata shard is written too: on resume, a missing shard means a lost block.
            _array(group, name, path).with_config({"write_empty_chunks": True})[rows, cols] = arr
            if on_written is not None:
                on_written(n, len(arrays))
    except _write_errors() as exc:  # disk full, a vanished mount or endpoint
        _raise_if_remote(path, f"block rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop}", exc)
        raise OutputError(
            f"writing block rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop} into "
            f"{_name(path)!r} failed ({_strerror(exc)}); free space or fix the output folder, "
            "then run again with --resume"
        ) from exc


def update_attrs(path: StorePath, attrs: Mapping[str, Any]) -> None:
    """Add or replace group attributes of the store (e.g. the threshold Otsu chose).

    Raises:
        OutputError: the store cannot be written.
    """
    try:
        zarr.open_group(_zarr_store(path), mode="r+").attrs.update(dict(attrs))
    except _write_errors() as exc:
        _raise_if_remote(path, "zarr.json", exc)
        raise OutputError(f"cannot update the attributes of {_name(path)!r} ({_strerror(exc)})") from exc


def store_problem(path: StorePath, grid: Grid, products: Sequence[str], *, shard: int,
                  chunk: int, fingerprint: str) -> str | None:
    """Why the store at ``path`` cannot take this run's blocks (``None`` when it can).

    It must open, carry the run's fingerprint, hold every product as a uint8 array
    of the grid's shape with the run's shards, and decode to the grid's CRS and transform.
    """
    try:
        group = zarr.open_group(_zarr_store(path), mode="r")
        if group.attrs.get("fingerprint") != fingerprint:
            return f"its fingerprint {group.attrs.get('fingerprint')!r} is not this run's"
        for name in products:
            arr = group.get(name)
            if not isinstance(arr, zarr.Array):
                return f"it has no array {name!r}"
            want = _shard_shape(grid, shard, chunk)
            if arr.shape != grid.shape or arr.dtype != np.uint8 or arr.shards != want:
                return (f"array {name!r} is {arr.shape} {arr.dtype} in shards {arr.shards}, "
                        f"not {grid.shape} uint8 in {want}")
        ds = open_products(path)
        try:
            if ds.rio.shape != grid.shape or ds.rio.crs != grid.crs or \
                    not ds.rio.transform().almost_equals(grid.affine):
                return f"its georeferencing ({ds.rio.shape}, {ds.rio.crs}) is not the output grid's"
        finally:
            ds.close()
    except Exception as exc:  # any failure to read it back means it cannot be trusted
        return f"it cannot be read ({type(exc).__name__}: {exc})"
    return None


def block_problem(path: StorePath, window: Window, products: Sequence[str]) -> str | None:
    """Why the written block at ``window`` cannot be trusted (``None`` when every shard decodes).

    Each product's shard of the block must exist (written blocks always leave one)
    and decode completely: its index checksum and every chunk in it.
    """
    rows, cols = window.slices()
    try:
        group = zarr.open_group(_zarr_store(path), mode="r")
    except Exception as exc:
        return f"the store cannot be opened ({exc})"
    for name in products:
        key = "?"
        try:
            arr = _array(group, name, path)
            assert arr.shards is not None
            key = arr.metadata.encode_chunk_key((window.row // arr.shards[0], window.col // arr.shards[1]))
            if not _shard_exists(path, f"{name}/{key}"):
                return f"shard {name}/{key} is missing"
            np.asarray(arr[rows, cols])
        except Exception as exc:
            return f"shard {name}/{key} does not decode ({type(exc).__name__}: {exc})"
    return None


def remove_blocks(path: StorePath, windows: Sequence[Window], products: Sequence[str]) -> None:
    """Remove every product's shard of the blocks at ``windows`` (blocks that cannot be trusted).

    Zarr reads a shard before writing into it, so a torn shard would fail the
    block's next write too: a block computed again starts from no shard.
    """
    if not windows or not products:
        return
    group = zarr.open_group(_zarr_store(path), mode="r")
    for name in products:
        arr = _array(group, name, path)
        assert arr.shards is not None
        for window in windows:
            key = arr.metadata.encode_chunk_key((window.row // arr.shards[0], window.col // arr.shards[1]))
            _shard_remove(path, f"{name}/{key}")


def _shard_shape(grid: Grid, shard: int, chunk: int) -> tuple[int, int]:
    """The shard shape :func:`create_store` gives a product of ``grid``."""
    cshape = (min(chunk, grid.height), min(chunk, grid.width))
    return (-(-min(shard, grid.height) // cshape[0]) * cshape[0],
            -(-min(shard, grid.width) // cshape[1]) * cshape[1])


def read_window(path: StorePath, name: str, window: Window) -> np.ndarray:
    """Read a window of one product array: uint8 ``[h, w]``."""
    group = zarr.open_group(_zarr_store(path), mode="r")
    rows, cols = window.slices()
    return np.asarray(_array(group, name, path)[rows, cols])


def _array(group: zarr.Group, name: str, path: StorePath) -> zarr.Array:
    """The product array ``name`` of the store (an error when it is a group or missing)."""
    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise OutputError(
            f"{_name(path)!r} has no array {name!r}; it is not a store of this run (rerun with --overwrite)"
        )
    return node


def open_products(path: StorePath) -> xr.Dataset:
    """Open the store lazily with its georeferencing decoded."""
    store = _zarr_store(path)
    return xr.open_zarr(Path(store) if isinstance(store, str) else store, decode_coords="all", consolidated=False)


def _strerror(exc: BaseException) -> str:
    """An OS error's message (``No space left on device``), else the exception's text."""
    return str(getattr(exc, "strerror", None) or exc)


def _write_errors() -> tuple[type[BaseException], ...]:
    """What a failed write raises: an OS error, or an object-store client's errors."""
    return (OSError, *storage_errors())


def _raise_if_remote(path: StorePath, what: str, exc: BaseException) -> None:
    """On object storage, raise the failure as an OutputError naming the store's URL, ``what`` and the likely fix."""
    location = as_location(path)
    fix = location.storage_fix(exc)
    if fix is not None:
        raise OutputError(f"writing {what} into {location.url!r} failed; {fix}; then run "
                          "again with --resume") from exc


def _name(path: StorePath) -> str:
    """The store's name for messages (a URL for an object-store prefix)."""
    return as_location(path).url


def _zarr_store(path: StorePath) -> Any:
    """What zarr and xarray open: the folder's name, or the object store's Zarr store of the prefix."""
    return as_location(path).zarr_store("")


def _shard_exists(path: StorePath, key: str) -> bool:
    """Whether the shard object/file ``key`` of the store exists."""
    return as_location(path).file_exists(key)


def _shard_remove(path: StorePath, key: str) -> None:
    """Remove the shard ``key`` of the store (missing is no error)."""
    as_location(path).delete(key)
