"""Read one window of a scene, scaled to [0, 1], with its validity mask; and windows of the dates' masks.

Runs inside block tasks. Each thread keeps its own lazily opened handles
(rioxarray ``open_rasterio(lock=False)`` without dask chunks, so slicing reads
exactly the window; rasterio ``WarpedVRT`` for ``align: reproject``), so reads
are lock-free and never shared between threads. Windows may reach past the
scene (tiny scenes, AOIs at the edge): the outside is zero and invalid, like a
boundless read. A read that fails because the file is damaged becomes an input
error naming the file, band and pixels (:mod:`~s2c_batch.pipeline.inputs.damage`).

Remote scenes (URLs, ``/vsi...`` paths) are read with the GDAL options of their
``storage`` section entered around every read, here in the task: an environment set
on the client does not reach the workers (:mod:`~s2c_batch.pipeline.inputs.remote`).
A remote read that fails for a reason the user must fix (a missing object, rejected or
absent credentials, an unreachable server) is an input error naming the URL and the fix.

Validity comes from every source GDAL knows: the nodata value and NaN (as before), the
file's per-dataset mask band (an internal mask or a ``.msk`` sidecar) or its alpha band,
read window by window with the pixels (through a warp, GDAL carries either into the warped
VRT's alpha band), and the date's external mask (:class:`~s2c_batch.pipeline.inputs.masks.MaskSource`,
:func:`read_mask`), read window by window too.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import rasterio
import rasterio.env
import rasterio.windows
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.kernels.raster.validity import observed
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.damage import read_failure
from s2c_batch.pipeline.inputs.grid import WarpSpec
from s2c_batch.pipeline.inputs.masks import MaskSource
from s2c_batch.pipeline.inputs.remote import raster_env
from s2c_batch.pipeline.inputs.remote_errors import remote_failure
from s2c_batch.pipeline.inputs.scene import SceneSource
from s2c_batch.pipeline.inputs.source import Source

_local = threading.local()

#: GDAL block cache (MB) of a worker process unless GDAL_CACHEMAX is set in its
#: environment. GDAL's default (5% of RAM) fills up as a worker reads more blocks,
#: so a worker's memory would grow with the scene; a fixed cache keeps it flat.
GDAL_CACHE_MB = 64
_gdal_configured = False


def _configure_gdal() -> None:
    global _gdal_configured
    if not _gdal_configured:
        if "GDAL_CACHEMAX" not in os.environ:
            rasterio.env.set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB)
        _gdal_configured = True


def read_window(source: SceneSource, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Read ``window`` (output-grid coordinates) of a source.

    Args:
        source: the scene spec.
        window: pixels to read; may extend past the scene.

    Returns:
        ``(data, valid)``: the raw pixels ``[C, h, w]`` in the file's dtype (0
        outside the scene or where invalid; scale them with ``source.scale``, see
        :func:`s2c_batch.kernels.prediction.to_unit`) and bool ``[h, w]``. A pixel is invalid when every
        selected band equals the nodata value, when any band is NaN, when the file's
        mask band or alpha band is 0 there, when the date's external mask flags it,
        when the warp has no source pixel there, or when it lies outside the scene.
        Pixels stay in their raw dtype so a block holds 1 byte per uint8 sample, not 4.
    """
    _configure_gdal()
    with raster_env(source.raster, source.storage):
        data, valid = _read_window(source, window)
    if source.mask is not None:
        valid &= read_mask(source.mask, window)
        data[:, ~valid] = 0
    return data, valid


def read_mask(mask: MaskSource, window: Window) -> np.ndarray:
    """Where a date's external mask says the pixels of ``window`` (output-grid coordinates) were observed.

    Returns:
        bool ``[h, w]``: False where the mask's rule flags the pixel, where it holds the
        mask's nodata value, where the warp has no mask pixel, and outside the mask.
    """
    _configure_gdal()
    out = np.zeros((window.height, window.width), bool)
    file_win = Window(window.row + mask.offset[0], window.col + mask.offset[1], window.height, window.width)
    part = file_win.intersection(Window(0, 0, mask.height, mask.width))
    if part is None:
        return out
    win = rasterio.windows.Window(part.col, part.row, part.width, part.height)
    try:
        with raster_env(mask.raster, mask.storage):
            if mask.warp is None:
                values = _dataset(mask.path).read(1, window=win)
                ok = np.ones(values.shape, bool)
            else:
                vrt = _warped_mask(mask)
                values, ok = vrt.read(1, window=win), vrt.read(vrt.count, window=win) > 0
    except RasterioError as exc:
        raise _diagnose_mask(mask, part, exc) from exc
    ok &= observed(values, mask.rule)
    if mask.nodata is not None:
        ok &= ~np.isnan(values) if np.isnan(mask.nodata) else values != values.dtype.type(mask.nodata)
    out[part.slices((file_win.row, file_win.col))] = ok
    return out


def _diagnose_mask(mask: MaskSource, part: Window, exc: RasterioError) -> BaseException:
    """As :func:`_diagnose` for a scene: an input error naming the mask's key when its damage reproduces."""
    if mask.raster.remote:
        known = remote_failure(mask.key, mask.path, exc)
        if known is not None:
            return known
    try:
        with rasterio.open(mask.raster.gdal_path) as src:
            if mask.warp is None:
                found = read_failure(mask.path, src, [1], part, exc)
            else:
                with _new_warped_mask(src, mask.warp) as vrt:
                    found = read_failure(mask.path, vrt, [1], part, exc)
    except RasterioError:  # the file no longer opens: its own, clear error
        return exc
    return InputError(f"{mask.key}: {found}") if isinstance(found, InputError) else found


def _read_window(source: SceneSource, window: Window) -> tuple[np.ndarray, np.ndarray]:
    c = len(source.bands)
    file_win = Window(window.row + source.offset[0], window.col + source.offset[1],
                      window.height, window.width)
    part = file_win.intersection(Window(0, 0, source.height, source.width))
    if part is None:
        return (np.zeros((c, window.height, window.width), np.dtype(source.dtype)),
                np.zeros((window.height, window.width), bool))
    raw, ok = _read_raw(source, part)
    ok &= _valid_pixels(raw, source.nodata)
    raw[:, ~ok] = 0
    if part == file_win:
        return raw, ok
    data = np.zeros((c, window.height, window.width), raw.dtype)
    valid = np.zeros((window.height, window.width), bool)
    dst = part.slices((file_win.row, file_win.col))
    data[(slice(None), *dst)] = raw
    valid[dst] = ok
    return data, valid


def _valid_pixels(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """Bool ``[h, w]``: not every band equals ``nodata``, and no band is NaN."""
    ok = np.ones(raw.shape[1:], bool)
    if raw.dtype.kind == "f":
        ok &= ~np.isnan(raw).any(axis=0)
    if nodata is not None and not np.isnan(nodata):
        ok &= ~(raw == raw.dtype.type(nodata)).all(axis=0)
    return ok


def _read_raw(source: SceneSource, part: Window) -> tuple[np.ndarray, np.ndarray]:
    """Raw pixels ``[C, h, w]`` of a window inside the source, and the warp's coverage.

    Raises:
        InputError: the read fails again block by block: the file is damaged (exit 3,
            see :mod:`~s2c_batch.pipeline.inputs.damage`).
        RasterioError: a read that failed once (transient; Dask may retry it).
    """
    try:
        return _read_raw_once(source, part)
    except RasterioError as exc:
        raise _diagnose(source, part, exc) from exc


def _diagnose(source: SceneSource, part: Window, exc: RasterioError) -> BaseException:
    """An input error when the failed window's damage reproduces or a remote file is unreachable, else ``exc``."""
    if source.raster.remote:
        known = remote_failure("scene", source.path, exc)
        if known is not None:
            return known
    try:
        with rasterio.open(source.raster.gdal_path) as src:
            if source.warp is None:
                return read_failure(source.path, src, source.bands, part, exc)
            with _new_warped(src, source) as vrt:
                return read_failure(source.path, vrt, source.bands, part, exc)
    except RasterioError:  # the file no longer opens: its own, clear error
        return exc


def _read_raw_once(source: SceneSource, part: Window) -> tuple[np.ndarray, np.ndarray]:
    if source.warp is None:
        da = _lazy_array(source.path)
        sel = da.isel(
            band=[b - 1 for b in source.bands],
            y=slice(part.row, part.row_stop),
            x=slice(part.col, part.col_stop),
        )
        if not source.dataset_mask:
            return np.asarray(sel.values), np.ones((part.height, part.width), bool)
        win = rasterio.windows.Window(part.col, part.row, part.width, part.height)
        return np.asarray(sel.values), _dataset(source.path).read_masks(source.bands[0], window=win) > 0
    vrt = _warped(source)
    win = rasterio.windows.Window(part.col, part.row, part.width, part.height)
    raw = vrt.read(list(source.bands), window=win)
    alpha = vrt.read(vrt.count, window=win)  # the warp's coverage, with the file's mask or alpha band
    return raw, alpha > 0


def _cache() -> dict[object, object]:
    if not hasattr(_local, "handles"):
        _local.handles = {}
    return _local.handles


def _lazy_array(path: str) -> xr.DataArray:
    handles = _cache()
    da = handles.get(path)
    if da is None:
        da = rioxarray.open_rasterio(Source(path).gdal_path, lock=False, cache=False)
        handles[path] = da
    return da  # type: ignore[return-value]


def _dataset(path: str) -> rasterio.DatasetReader:
    """This thread's rasterio handle of a file (its mask band, a mask raster)."""
    handles = _cache()
    key = ("dataset", path)
    src = handles.get(key)
    if src is None:
        src = handles[key] = rasterio.open(Source(path).gdal_path)
    return src


def _warped_mask(mask: MaskSource) -> WarpedVRT:
    handles = _cache()
    key = ("mask", mask.path, mask.warp)
    vrt = handles.get(key)
    if vrt is None:
        assert mask.warp is not None
        vrt = handles[key] = _new_warped_mask(rasterio.open(mask.raster.gdal_path), mask.warp)
    return vrt


def _new_warped_mask(src: rasterio.DatasetReader, warp: WarpSpec) -> WarpedVRT:
    """A mask raster warped (nearest) onto ``warp``'s grid; its last band is the coverage."""
    return WarpedVRT(src, crs=CRS.from_wkt(warp.crs_wkt), transform=Affine(*warp.transform), width=warp.width,
                     height=warp.height, resampling=Resampling.nearest, add_alpha=True)


def _warped(source: SceneSource) -> WarpedVRT:
    handles = _cache()
    key = (source.path, source.warp)
    vrt = handles.get(key)
    if vrt is None:
        vrt = handles[key] = _new_warped(rasterio.open(source.raster.gdal_path), source)
    return vrt


def _new_warped(src: rasterio.DatasetReader, source: SceneSource) -> WarpedVRT:
    warp = source.warp
    assert warp is not None
    return open_warped(src, warp, nodata=source.nodata, alpha=source.alpha)


def open_warped(src: rasterio.DatasetReader, warp: WarpSpec, *, nodata: float | None,
                alpha: int | None) -> WarpedVRT:
    """A warped VRT of ``src`` on ``warp``'s grid whose last band is its coverage.

    The coverage (0 = no source pixel) carries the file's per-dataset mask (GDAL's
    warper uses it) or, with ``alpha``, the file's alpha band, which then is the VRT's
    last band instead of an added one (GDAL refuses to add a second).
    """
    options: dict[str, object] = {"src_alpha": alpha} if alpha is not None else {"add_alpha": True}
    return WarpedVRT(
        src,
        crs=CRS.from_wkt(warp.crs_wkt),
        transform=Affine(*warp.transform),
        width=warp.width,
        height=warp.height,
        resampling=Resampling[warp.resampling],
        src_nodata=nodata,
        **options,
    )


def close_handles() -> None:
    """Close this thread's cached handles (tests and worker teardown)."""
    for h in _cache().values():
        try:
            h.close()  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - best effort
            pass
    _cache().clear()
