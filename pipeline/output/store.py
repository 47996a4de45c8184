"""The ``change.zarr`` product: a georeferenced Zarr v3 group written block by block.

:func:`create_store` writes the metadata, the ``x``/``y`` coordinates and a CF
``spatial_ref`` grid mapping through xarray (``to_zarr(compute=False)``). Each
product carries the CF attributes xarray and rioxarray decode without options
(:func:`cf_attributes`): ``spatial_ref`` is a coordinate (``coordinates``) and the
grid mapping (``grid_mapping``), 255 is ``_FillValue``, ``change_prob`` decodes to
the probability (``scale_factor``), the masks and class maps name their values
(``flag_values``/``flag_meanings``). The stored bytes are the uint8 encodings of
DESIGN.md; only the metadata says how to read them. Once a run is complete,
:func:`consolidate` gathers every array's metadata into the group's ``zarr.json``,
so a reader opens the store with one metadata read; a resumed run removes it
first (:func:`unconsolidate`), so a store that is being written never claims to
be complete. The pipeline itself reads the raw bytes (:func:`read_window`,
:func:`open_products`) and never trusts consolidated metadata.

Each product array has one shard per output block (chunks of
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
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

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
    "change_prob": "change probability, round(254 * p); 255 = unknown",
    "change_mask": "binary change (1 = changed, 0 = unchanged); 255 = unknown",
    "class_t1": "class of t1 (index in the vocabulary); 255 = unknown",
    "class_t2": "class of t2 (index in the vocabulary); 255 = unknown",
}

#: What the fill value means, in every product's CF ``comment``.
UNKNOWN_COMMENT = ("_FillValue 255 (NaN once decoded) = unknown: a date did not observe the pixel "
                   "(nodata, NaN, mask band, alpha band, external mask) or t2 does not reach it; "
                   "unknown is not 'no change'")

#: ``change_prob`` stores round(254 p): decoding multiplies by this.
PROB_SCALE = 1 / 254

#: Meanings of the values of ``change_mask`` (its ``flag_meanings``).
MASK_MEANINGS = ("unchanged", "changed")

#: What zarr-python warns when it writes consolidated metadata in a Zarr v3 store.
_CONSOLIDATED_WARNING = "Consolidated metadata is currently not part in the Zarr format 3 specification"


def cf_attributes(name: str, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The CF attributes of the product ``name`` that make xarray mask, scale and name its values.

    ``_FillValue`` is the nodata of every product, which marks its *unknown* pixels
    (``comment``: :data:`UNKNOWN_COMMENT`); xarray masks it, so a decoded product is float
    with NaN where unknown, and no flag value stands for unknown. ``change_prob`` gets
    ``scale_factor`` = 1/254 (decoded: the probability in [0, 1]) with its ``valid_range``
    in stored units; ``change_mask`` and the class maps get ``flag_values`` and ``flag_meanings`` (a class map's are the
    vocabulary's class names, blanks written as ``_``, as CF's blank-separated list asks).

    Args:
        name: ``change_prob``, ``change_mask``, ``class_t1`` or ``class_t2``.
        class_names: the vocabulary's class names (class maps only).

    Returns:
        The attributes, JSON-serialisable.

    Example:
        >>> attrs = cf_attributes("class_t1", ["background", "sports field"])
        >>> attrs["_FillValue"], attrs["flag_values"], attrs["flag_meanings"]
        (255, [0, 1], 'background sports_field')
    """
    attrs: dict[str, Any] = {"_FillValue": NODATA, "comment": UNKNOWN_COMMENT}
    if name == "change_prob":
        attrs.update(scale_factor=PROB_SCALE, valid_range=[0, 254], units="1")
    elif name == "change_mask":
        attrs.update(flag_values=[0, 1], flag_meanings=" ".join(MASK_MEANINGS))
    elif name in ("class_t1", "class_t2") and class_names is not None:
        attrs.update(flag_values=list(range(len(class_names))),
                     flag_meanings=" ".join("_".join(n.split()) for n in class_names))
    return attrs


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
    class_names: Sequence[str] | None = None,
) -> None:
    """Create the Zarr v3 group with empty (all-nodata) product arrays and their CF attributes.

    Args:
        path: the store folder (must not exist).
        grid: the output grid.
        products: array names, e.g. ``("change_prob", "change_mask")``.
        shard: shard side = output block side.
        chunk: chunk side inside a shard (divides ``shard``).
        attrs: group attributes (provenance).
        product_attrs: extra attributes per product.
        class_names: the vocabulary's class names, the flag meanings of the class maps.

    Raises:
        OutputError: the folder cannot be written.
    """
    y, x = pixel_centres(grid)
    shape = (grid.height, grid.width)
    data_vars = {}
    for name in products:
        arr = da.full(shape, NODATA, dtype=np.uint8, chunks=(shard, shard))
        extra = dict((product_attrs or {}).get(name, {}))
        # The data stay uint8 in xarray's eyes: only encodings would be applied on writing, and
        # the CF attributes are plain attributes here, written as they are for readers to decode.
        cf = {**cf_attributes(name, class_names), "coordinates": "spatial_ref"}
        data_vars[name] = (("y", "x"), arr, {"long_name": PRODUCT_DESCRIPTIONS.get(name, name), **cf, **extra})
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
        group = _open_group(path, "r+")
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
        _open_group(path, "r+").attrs.update(dict(attrs))
    except _write_errors() as exc:
        _raise_if_remote(path, "zarr.json", exc)
        raise OutputError(f"cannot update the attributes of {_name(path)!r} ({_strerror(exc)})") from exc


def consolidate(path: StorePath) -> None:
    """Write every array's metadata into the group's ``zarr.json`` (the run is complete).

    A reader (``xarray.open_zarr``, ``zarr.open_group``) then opens the store with one
    metadata read, and xarray no longer warns that it falls back to reading each array's.
    The result depends only on the store's metadata, so a resumed run writes the same bytes.

    Raises:
        OutputError: the store cannot be written.
    """
    # zarr-python 3 keeps consolidated metadata in zarr.json ("consolidated_metadata"), where
    # xarray reads it; that the v3 specification has no such field yet is no news to a run's log.
    # The filter (that message of zarr's only) stays in the process: ``warnings.catch_warnings``
    # around the write is not thread-safe, and ``batch`` consolidates runs from concurrent threads.
    # Set at each call, it is back after a ``catch_warnings`` block that began before it ended.
    warnings.filterwarnings("ignore", message=_CONSOLIDATED_WARNING, category=UserWarning, module=r"zarr\.")
    try:
        zarr.consolidate_metadata(_zarr_store(path))
    except _write_errors() as exc:
        _raise_if_remote(path, "the consolidated metadata (zarr.json)", exc)
        raise OutputError(f"cannot consolidate the metadata of {_name(path)!r} ({_strerror(exc)}); "
                          "free space or fix the output folder, then run again with --resume") from exc


def is_consolidated(path: StorePath) -> bool:
    """Whether the store's ``zarr.json`` holds consolidated metadata (a complete run's store)."""
    group = zarr.open_group(_zarr_store(path), mode="r")
    return group.metadata.consolidated_metadata is not None


def unconsolidate(path: StorePath) -> None:
    """Remove the consolidated metadata of a store that is about to be written again (``--resume``).

    Otherwise a reader would take a store whose blocks are being rewritten for a complete
    one; :func:`consolidate` writes it again once the resumed run is complete. A store
    without consolidated metadata is left untouched.

    Raises:
        OutputError: the store cannot be written.
    """
    try:
        if not is_consolidated(path):
            return
        # Opened without its consolidated metadata, the group writes zarr.json back without it.
        _open_group(path, "r+").update_attributes({})
    except _write_errors() as exc:
        _raise_if_remote(path, "zarr.json", exc)
        raise OutputError(f"cannot remove the consolidated metadata of {_name(path)!r} ({_strerror(exc)}); "
                          "free space or fix the output folder, then run again with --resume") from exc


def store_problem(path: StorePath, grid: Grid, products: Sequence[str], *, shard: int,
                  chunk: int, fingerprint: str) -> str | None:
    """Why the store at ``path`` cannot take this run's blocks (``None`` when it can).

    It must open, carry the run's fingerprint, hold every product as a uint8 array
    of the grid's shape with the run's shards, and decode to the grid's CRS and transform.
    """
    try:
        group = _open_group(path, "r")
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
        group = _open_group(path, "r")
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
    group = _open_group(path, "r")
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
    """Read a window of one product array: uint8 ``[h, w]`` (the stored bytes, 255 = unknown)."""
    group = _open_group(path, "r")
    rows, cols = window.slices()
    return np.asarray(_array(group, name, path)[rows, cols])


def _open_group(path: StorePath, mode: Literal["r", "r+"]) -> zarr.Group:
    """The store's group as the pipeline reads and writes it: from each array's own metadata.

    Consolidated metadata is written last and is a copy (:func:`consolidate`); a write
    through a group opened without it leaves a ``zarr.json`` without it.
    """
    return zarr.open_group(_zarr_store(path), mode=mode, use_consolidated=False)


def _array(group: zarr.Group, name: str, path: StorePath) -> zarr.Array:
    """The product array ``name`` of the store (an error when it is a group or missing)."""
    node = group.get(name)
    if not isinstance(node, zarr.Array):
        raise OutputError(
            f"{_name(path)!r} has no array {name!r}; it is not a store of this run (rerun with --overwrite)"
        )
    return node


def open_products(path: StorePath) -> xr.Dataset:
    """Open the store lazily as the pipeline reads it: georeferencing decoded, pixels as stored.

    The products stay uint8 with 255 = nodata (``mask_and_scale=False``); a user's plain
    ``xarray.open_zarr`` masks and scales them instead (:func:`cf_attributes`). Each
    array's own metadata is read, whether or not the store is consolidated.
    """
    store = _zarr_store(path)
    return xr.open_zarr(Path(store) if isinstance(store, str) else store, decode_coords="all", consolidated=False,
                        mask_and_scale=False)


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
