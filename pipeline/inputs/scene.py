"""Open and validate a pair of scenes; decide the output grid.

Both scenes are opened lazily with rioxarray (dask chunks, ``lock=False``) to
read their metadata; no pixels are read here except one tiny window per file,
which catches truncated or corrupt rasters before any work is submitted. The
result is a :class:`ScenePair`: two picklable :class:`SceneSource` specs that a
block task reads windows from (see :mod:`s2c_batch.pipeline.inputs.reader`), and the
output :class:`Grid`.

Alignment: identical CRS, transform and shape is the fast path. Otherwise
``input.align: strict`` raises :class:`SceneMismatchError` naming both values,
and ``input.align: reproject`` warps t2 onto t1's grid lazily (a GDAL warped
VRT read window by window).

Validity: a pixel of a date is observed unless every selected band equals the nodata
value, a band is NaN, the file's mask band says so (an internal mask, a ``.msk``
sidecar: GDAL's per-dataset mask), its alpha band is 0, or its external mask
(``input.mask_t1`` / ``input.mask_t2``, :mod:`~s2c_batch.pipeline.inputs.masks`) flags it.
An alpha band is never one of ``input.bands``.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
import rioxarray
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.warp import transform_bounds

from s2c_batch.kernels.raster.validity import mask_rule
from s2c_batch.pipeline.config import InputConfig, StorageConfig
from s2c_batch.pipeline.errors import ConfigError, InputError, SceneMismatchError
from s2c_batch.pipeline.inputs.damage import gdal_messages
from s2c_batch.pipeline.inputs.grid import Grid, WarpSpec
from s2c_batch.pipeline.inputs.masks import GridOf, MaskSource, open_mask
from s2c_batch.pipeline.inputs.remote import open_raster, raster_env, resolve_storage
from s2c_batch.pipeline.inputs.remote_errors import remote_failure, remote_input_error
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.inputs.stac_item import resolve_item

#: dtypes a scene may have; others (complex, int8, ...) are refused.
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class SceneSource:
    """Everything a worker needs to read windows of one date; small and picklable.

    Attributes:
        path: the raster: a local file (GeoTIFF, VRT, anything GDAL opens), an
            ``s3://``, ``gs://`` or ``http(s)://`` URL or a GDAL ``/vsi...`` path
            (:mod:`~s2c_batch.pipeline.inputs.remote`).
        bands: 1-based band indexes to read.
        nodata: value marking invalid pixels (all selected bands equal), or ``None``.
        scale: divisor mapping raw values to [0, 1].
        offset: (row, col) of the output grid's origin in the source's (warped) grid.
        height: rows of the source's (warped) grid, to clip reads.
        width: columns of the source's (warped) grid.
        warp: set when the source is read through a warped VRT onto t1's grid.
        dtype: the raster's dtype name.
        storage: how GDAL reaches a remote ``path`` (resolved on the client; no secrets).
        dataset_mask: the file has a mask band for the selected bands (an internal mask,
            a ``.msk`` sidecar or an alpha band): its zeros are not observed.
        alpha: the 1-based index of the file's alpha band, or ``None``.
        mask: the date's external mask (``input.mask_t1`` / ``input.mask_t2``), or ``None``.
    """

    path: str
    bands: tuple[int, ...]
    nodata: float | None
    scale: float
    offset: tuple[int, int]
    height: int
    width: int
    warp: WarpSpec | None = None
    dtype: str = "uint8"
    storage: StorageConfig | None = None
    dataset_mask: bool = False
    alpha: int | None = None
    mask: MaskSource | None = None

    @property
    def raster(self) -> Source:
        """The raster read, as a :class:`~s2c_batch.pipeline.inputs.source.Source`."""
        return Source(self.path)


@dataclass(frozen=True)
class ScenePair:
    """Two validated sources and the output grid they are read on."""

    t1: SceneSource
    t2: SceneSource
    grid: Grid


@dataclass(frozen=True)
class _Meta:
    crs: CRS | None
    transform: Affine
    height: int
    width: int
    count: int
    dtype: str
    nodata: float | None
    alpha: int | None = None
    masked_bands: tuple[int, ...] = ()

    @property
    def grid(self) -> GridOf:
        """The raster's grid, as the mask checks compare it."""
        return GridOf(self.crs, self.transform, self.height, self.width)


def inspect_scene(path: str | os.PathLike[str] | Source, label: str, storage: StorageConfig | None = None) -> _Meta:
    """Open a raster lazily with rioxarray and return its metadata.

    Args:
        path: a local file, a URL or a GDAL ``/vsi...`` path.
        label: ``t1`` or ``t2``, for messages.
        storage: how GDAL reaches a remote ``path``.

    Raises:
        InputError: missing, unreadable, corrupt or unsupported raster; the
            message names ``label`` (t1/t2) and the file, for a URL also the likely
            fix (missing object or bucket, rejected credentials, unreachable server).
    """
    source = Source.parse(path)
    remote = source.remote
    p = source.path if not remote else source.text
    if isinstance(p, Path) and not p.exists():
        raise InputError(f"{label} scene {str(p)!r} does not exist; check the path")
    if isinstance(p, Path) and p.is_dir():
        raise InputError(f"{label} scene {str(p)!r} is a directory, not a raster file")
    try:
        with raster_env(source, storage):
            da = rioxarray.open_rasterio(
                Source.parse(p).gdal_path, chunks={"band": -1, "y": "auto", "x": "auto"}, lock=False, cache=False
            )
    except Exception as exc:  # rasterio raises several types for unreadable files
        if remote:
            raise remote_input_error(f"{label} scene", source.text, exc) from exc
        raise InputError(
            f"{label} scene {str(p)!r} cannot be opened as a raster ({exc}); "
            "give a GeoTIFF or another GDAL-readable file"
        ) from exc
    if not isinstance(da, xr.DataArray):
        for item in da if isinstance(da, list) else [da]:
            item.close()
        raise InputError(
            f"{label} scene {str(p)!r} holds several subdatasets, not one raster; "
            "give one of them (a GDAL subdataset name) or a GeoTIFF"
        )
    try:
        count, height, width = (int(n) for n in da.shape)
        dtype = str(da.dtype)
        nodata = da.rio.nodata
        meta = _Meta(
            crs=da.rio.crs,
            transform=da.rio.transform(),
            height=height,
            width=width,
            count=count,
            dtype=dtype,
            nodata=None if nodata is None else float(nodata),
        )
    finally:
        da.close()
    if meta.dtype not in SUPPORTED_DTYPES:
        raise InputError(
            f"{label} scene {str(p)!r} has dtype {meta.dtype!r}, which is not supported; "
            f"supported dtypes are {list(SUPPORTED_DTYPES)}"
        )
    return _probe_pixels(source, label, meta, storage)


def _probe_pixels(source: Source, label: str, meta: _Meta, storage: StorageConfig | None) -> _Meta:
    """Read the first and last pixel of every band (truncated files fail here); note the mask bands.

    Returns:
        ``meta`` with its alpha band and the bands whose validity a mask band gives.
    """
    try:
        with open_raster(source, storage) as src:
            for r, c in ((0, 0), (meta.height - 1, meta.width - 1)):
                src.read(window=rasterio.windows.Window(c, r, 1, 1))
                src.read_masks(window=rasterio.windows.Window(c, r, 1, 1))
            alpha = next((i + 1 for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha), None)
            masked = tuple(i + 1 for i, flags in enumerate(src.mask_flag_enums)
                           if MaskFlags.per_dataset in flags and i + 1 != alpha)
            return replace(meta, alpha=alpha, masked_bands=masked)
    except Exception as exc:
        known = remote_failure(f"{label} scene", source.text, exc) if source.remote else None
        if known is not None:
            raise known from exc
        raise InputError(
            f"{label} scene {source.text!r} is corrupt or truncated: reading its pixels failed "
            f"({'; '.join(gdal_messages(exc)) or exc})"
        ) from exc


def open_pair(
    t1: str | os.PathLike[str] | Source,
    t2: str | os.PathLike[str] | Source,
    cfg: InputConfig,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    storage: StorageConfig | None = None,
) -> ScenePair:
    """Validate two scenes against each other and the input config.

    Args:
        t1: the earlier scene (a path, a URL or a GDAL ``/vsi...`` path, or a STAC Item
            ``.json`` whose asset ``cfg.asset`` is read; a string is parsed into a
            :class:`~s2c_batch.pipeline.inputs.source.Source` here); its grid is the output grid.
        t2: the later scene.
        cfg: the ``input`` config section.
        bbox: optional AOI ``(minx, miny, maxx, maxy)`` in t1's CRS.
        storage: the ``storage`` config section; resolved here, on the client
            (:func:`~s2c_batch.pipeline.inputs.remote.resolve_storage`), when an input is remote.

    Returns:
        The pair of sources and the output grid.

    Raises:
        InputError: a scene is unusable (missing, corrupt, too few bands, no
            overlap, bbox outside the scene).
        SceneMismatchError: CRS, transform or shape differ under ``align: strict``.
        ConfigError: a float raster without ``input.scale``, or a ``storage``
            section that does not resolve.
    """
    t1, t2 = Source.parse(t1), Source.parse(t2)
    items = (t1 if t1.is_stac_item else None, t2 if t2.is_stac_item else None)
    storage = storage or StorageConfig()
    if t1.remote or t2.remote:
        storage = resolve_storage(storage)
    t1, t2 = (resolve_item(t, label, asset=cfg.asset, bands=tuple(cfg.bands), storage=storage)
              if t.is_stac_item else t for t, label in ((t1, "t1"), (t2, "t2")))
    if t1.remote or t2.remote:  # a local STAC Item may list remote assets
        storage = resolve_storage(storage)
    elif any(t.text.lower().endswith(".vrt") for t in (t1, t2)):
        with contextlib.suppress(ConfigError):  # a VRT may name URLs; one of local files needs no endpoint
            storage = resolve_storage(storage)
    m1, m2 = inspect_scene(t1, "t1", storage), inspect_scene(t2, "t2", storage)
    for label, path, meta in (("t1", t1, m1), ("t2", t2, m2)):
        if max(cfg.bands) > meta.count:
            raise InputError(
                f"{label} scene {str(path)!r} has {meta.count} band(s) but input.bands asks for "
                f"{list(cfg.bands)}; set --set input.bands=[...] to bands that exist (1..{meta.count})"
            )
        if meta.crs is None:
            raise InputError(
                f"{label} scene {str(path)!r} has no CRS; georeference it (e.g. gdal_edit.py -a_srs)"
            )
        if meta.alpha is not None and meta.alpha in cfg.bands:
            raise InputError(
                f"input.bands {list(cfg.bands)} holds band {meta.alpha} of {label} scene {str(path)!r}, its alpha "
                "band (the mask of the others, not an image band); leave it out, e.g. --set input.bands="
                f"{[b for b in range(1, meta.count + 1) if b != meta.alpha][:3]}"
            )
        if cfg.coreg_band is not None and (cfg.coreg_band > meta.count or cfg.coreg_band == meta.alpha):
            raise InputError(
                f"input.coreg_band {cfg.coreg_band} is not an image band of {label} scene {str(path)!r} "
                f"({meta.count} band(s){f', band {meta.alpha} alpha' if meta.alpha else ''}); set it to one "
                "that is, or to null for the luminance of input.bands"
            )
    if m1.dtype != m2.dtype:
        raise SceneMismatchError(
            f"t1 {str(t1)!r} is {m1.dtype} but t2 {str(t2)!r} is {m2.dtype}; "
            "both dates must share a dtype so one input.scale fits both"
        )

    grid = Grid(
        crs_wkt=m1.crs.to_wkt(),  # type: ignore[union-attr]
        transform=tuple(m1.transform)[:6],
        height=m1.height,
        width=m1.width,
    )
    same_grid = (
        m1.crs == m2.crs
        and m1.transform.almost_equals(m2.transform, precision=1e-9)
        and (m1.height, m1.width) == (m2.height, m2.width)
    )
    warp = None
    if not same_grid:
        if cfg.align == "strict":
            raise SceneMismatchError(_mismatch_message(t1, t2, m1, m2))
        _check_overlap(t1, t2, m1, m2)
        warp = WarpSpec(grid.crs_wkt, grid.transform, grid.height, grid.width, cfg.resampling)

    scale = _scale_for(cfg, m1.dtype, t1)
    rule = mask_rule(cfg.mask_values, cfg.mask_preset)
    masks = [
        None if value is None else open_mask(value, label, item=item, scene=meta.grid, scene_warp=scene_warp,
                                             target=grid, align=cfg.align, rule=rule, storage=storage)
        for value, label, item, meta, scene_warp in ((cfg.mask_t1, "t1", items[0], m1, None),
                                                     (cfg.mask_t2, "t2", items[1], m2, warp))
    ]
    s1 = SceneSource(
        path=t1.absolute, bands=tuple(cfg.bands),
        nodata=cfg.nodata if cfg.nodata is not None else m1.nodata,
        scale=scale, offset=(0, 0), height=m1.height, width=m1.width, dtype=m1.dtype, storage=storage,
        dataset_mask=cfg.bands[0] in m1.masked_bands, alpha=m1.alpha, mask=masks[0],
    )
    s2 = SceneSource(
        path=t2.absolute, bands=tuple(cfg.bands),
        nodata=cfg.nodata if cfg.nodata is not None else m2.nodata,
        scale=scale, offset=(0, 0),
        height=m1.height if warp else m2.height, width=m1.width if warp else m2.width,
        warp=warp, dtype=m2.dtype, storage=storage,
        dataset_mask=cfg.bands[0] in m2.masked_bands, alpha=m2.alpha, mask=masks[1],
    )
    if bbox is not None:
        grid, offset = _aoi(grid, bbox, t1)
        s1, s2 = with_offset(s1, offset), with_offset(s2, offset)
    return ScenePair(t1=s1, t2=s2, grid=grid)


def with_offset(source: SceneSource, offset: tuple[int, int]) -> SceneSource:
    """``source`` read with the output grid's origin at ``offset`` of its (warped) grid, its mask too."""
    mask = None if source.mask is None else replace(source.mask, offset=offset)
    return replace(source, offset=offset, mask=mask)


def _scale_for(cfg: InputConfig, dtype: str, path: Source) -> float:
    if cfg.scale is not None:
        return float(cfg.scale)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return float(np.iinfo(np.dtype(dtype)).max)
    raise ConfigError(
        f"t1 scene {str(path)!r} is {dtype}: set input.scale to the value that maps to 1 "
        "(e.g. --set input.scale=1.0 for reflectance in [0, 1], 10000 for Sentinel-2 L1C digital numbers)"
    )


def _mismatch_message(t1: object, t2: object, m1: _Meta, m2: _Meta) -> str:
    parts = []
    if m1.crs != m2.crs:
        parts.append(f"CRS {m1.crs.to_string()!r} vs {m2.crs.to_string()!r}")  # type: ignore[union-attr]
    if (m1.height, m1.width) != (m2.height, m2.width):
        parts.append(f"shape {(m1.height, m1.width)} vs {(m2.height, m2.width)}")
    if not m1.transform.almost_equals(m2.transform, precision=1e-9):
        parts.append(f"transform {tuple(m1.transform)[:6]} vs {tuple(m2.transform)[:6]}")
    return (
        f"t1 {str(t1)!r} and t2 {str(t2)!r} are not on the same grid: {'; '.join(parts)}. "
        "Co-register them, or pass --set input.align=reproject to warp t2 onto t1's grid"
    )


def _check_overlap(t1: object, t2: object, m1: _Meta, m2: _Meta) -> None:
    west1, south1, east1, north1 = _wsen(m1)
    west2, south2, east2, north2 = transform_bounds(m2.crs, m1.crs, *_wsen(m2))
    if west2 >= east1 or east2 <= west1 or south2 >= north1 or north2 <= south1:
        raise InputError(
            f"t1 {str(t1)!r} and t2 {str(t2)!r} do not overlap: t1 covers "
            f"{(west1, south1, east1, north1)}, t2 covers {(west2, south2, east2, north2)} in t1's CRS"
        )


def _wsen(meta: _Meta) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a raster."""
    xs = [meta.transform @ (c, r) for r in (0, meta.height) for c in (0, meta.width)]
    return (min(x for x, _ in xs), min(y for _, y in xs), max(x for x, _ in xs), max(y for _, y in xs))


def _aoi(
    grid: Grid, bbox: tuple[float, float, float, float], t1: object
) -> tuple[Grid, tuple[int, int]]:
    """Restrict the grid to the pixels of ``bbox`` (rounded outwards, clipped to the scene)."""
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy):
        raise ConfigError(f"--bbox must be minx,miny,maxx,maxy with min < max, got {bbox!r}")
    win = rasterio.windows.from_bounds(minx, miny, maxx, maxy, transform=grid.affine)
    r0, c0 = math.floor(win.row_off + 1e-9), math.floor(win.col_off + 1e-9)
    r1 = math.ceil(win.row_off + win.height - 1e-9)
    c1 = math.ceil(win.col_off + win.width - 1e-9)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, grid.height), min(c1, grid.width)
    if r1 <= r0 or c1 <= c0:
        raise InputError(
            f"--bbox {bbox!r} does not overlap t1 {str(t1)!r}, which covers "
            f"{_wsen(_Meta(None, grid.affine, grid.height, grid.width, 0, '', None))} in its CRS"
        )
    transform = grid.affine @ Affine.translation(c0, r0)
    sub = Grid(grid.crs_wkt, tuple(transform)[:6], r1 - r0, c1 - c0)
    return sub, (r0, c0)
