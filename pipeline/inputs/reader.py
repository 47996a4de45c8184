"""Read one window of a scene, scaled to [0, 1], with its validity mask.

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
from s2c_batch.pipeline.inputs.damage import read_failure
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
        selected band equals the nodata value, when any band is NaN, when the warp
        has no source pixel there, or when it lies outside the scene. Pixels stay
        in their raw dtype so a block holds 1 byte per uint8 sample, not 4.
    """
    _configure_gdal()
    with raster_env(source.raster, source.storage):
        return _read_window(source, window)


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
        return np.asarray(sel.values), np.ones((part.height, part.width), bool)
    vrt = _warped(source)
    win = rasterio.windows.Window(part.col, part.row, part.width, part.height)
    raw = vrt.read(list(source.bands), window=win)
    alpha = vrt.read(vrt.count, window=win)
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
    return WarpedVRT(
        src,
        crs=CRS.from_wkt(warp.crs_wkt),
        transform=Affine(*warp.transform),
        width=warp.width,
        height=warp.height,
        resampling=Resampling[warp.resampling],
        src_nodata=source.nodata,
        add_alpha=True,
    )


def close_handles() -> None:
    """Close this thread's cached handles (tests and worker teardown)."""
    for h in _cache().values():
        try:
            h.close()  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - best effort
            pass
    _cache().clear()
