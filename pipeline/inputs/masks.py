"""External mask rasters (``input.mask_t1`` / ``input.mask_t2``): named, checked, placed on the output grid.

A mask is a raster beside its scene (a cloud mask, Sentinel-2's SCL, Landsat's QA_PIXEL)
whose first band says, pixel by pixel, whether the date was observed
(:mod:`s2c_batch.kernels.raster.validity`: ``input.mask_values`` or ``input.mask_preset``).
It is named like a scene (a path, an ``s3://``, ``gs://`` or ``http(s)://`` URL, a GDAL
``/vsi...`` path) or, when its scene is a STAC Item, by the name of one of the item's
assets (``SCL``).

Its grid is checked as the scenes' are: a mask on its scene's grid is read window by
window as it is (through the scene's own warp when t2 is warped onto t1's grid);
a mask on another grid is refused under ``input.align: strict`` and warped onto the
output grid (nearest) under ``input.align: reproject``. The result is a small picklable
:class:`MaskSource` the block tasks read (:func:`s2c_batch.pipeline.inputs.reader.read_mask`).
A pixel the mask does not cover, or that holds the mask's own nodata value, is not observed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from affine import Affine
from rasterio.crs import CRS

from s2c_batch.kernels.raster.validity import MaskRule
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError, SceneMismatchError
from s2c_batch.pipeline.inputs.damage import gdal_messages
from s2c_batch.pipeline.inputs.grid import Grid, WarpSpec
from s2c_batch.pipeline.inputs.remote import open_raster
from s2c_batch.pipeline.inputs.remote_errors import remote_failure
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.inputs.stac_item import asset_named


@dataclass(frozen=True)
class MaskSource:
    """Everything a worker needs to read windows of one date's mask; small and picklable.

    Attributes:
        path: the mask raster (local path made absolute, URL or ``/vsi...`` path).
        key: the config key that named it (``input.mask_t1``), for messages.
        rule: which of its values mean "not observed".
        offset: (row, col) of the output grid's origin in the mask's (warped) grid.
        height: rows of the mask's (warped) grid, to clip reads.
        width: columns of the mask's (warped) grid.
        nodata: the mask raster's own nodata value (not observed), or ``None``.
        warp: set when the mask is read through a warped VRT (nearest) onto the output grid.
        storage: how GDAL reaches a remote ``path``.
    """

    path: str
    key: str
    rule: MaskRule
    offset: tuple[int, int]
    height: int
    width: int
    nodata: float | None = None
    warp: WarpSpec | None = None
    storage: StorageConfig | None = None

    @property
    def raster(self) -> Source:
        """The mask raster, as a :class:`~s2c_batch.pipeline.inputs.source.Source`."""
        return Source(self.path)


@dataclass(frozen=True)
class GridOf:
    """A raster's grid as the mask checks compare it: CRS, transform, shape."""

    crs: CRS | None
    transform: Affine
    height: int
    width: int

    def same(self, other: GridOf) -> bool:
        """Same CRS, transform (to 1e-9) and shape."""
        return (self.crs == other.crs and self.transform.almost_equals(other.transform, precision=1e-9)
                and (self.height, self.width) == (other.height, other.width))


def mask_name(value: str, label: str, item: Source | None, storage: StorageConfig | None) -> Source:
    """The raster an ``input.mask_*`` value names.

    Args:
        value: the key's value: a path, a URL, or an asset name of the scene's STAC Item.
        label: ``t1`` or ``t2``.
        item: the scene's STAC Item when the scene is one, else ``None``.
        storage: how an ``s3://`` item is reached.

    Raises:
        InputError: an asset name the item does not list (its assets are named).
    """
    source = Source.parse(value.strip())
    if item is not None and not source.is_url and "/" not in source.text and not Path(source.text).exists():
        return asset_named(item, label, source.text, key=f"input.mask_{label}", storage=storage)
    return source


def open_mask(
    value: str,
    label: str,
    *,
    item: Source | None,
    scene: GridOf,
    scene_warp: WarpSpec | None,
    target: Grid,
    align: str,
    rule: MaskRule,
    storage: StorageConfig | None,
) -> MaskSource:
    """Check one date's mask against its scene and place it on the output grid.

    Args:
        value: the ``input.mask_t1`` / ``input.mask_t2`` value.
        label: ``t1`` or ``t2``.
        item: the scene's STAC Item, when the scene is one (then ``value`` may name an asset).
        scene: the scene's own grid.
        scene_warp: how the scene is warped onto the output grid (t2 under ``align: reproject``), or ``None``.
        target: the whole output grid (t1's, before any ``--bbox``).
        align: ``input.align``.
        rule: ``input.mask_values`` / ``input.mask_preset`` as a rule.
        storage: how GDAL reaches a remote mask.

    Returns:
        The mask's read spec (its ``offset`` is set with the scenes', for ``--bbox``).

    Raises:
        InputError: the mask is missing, unreadable or corrupt, has no CRS, or does not
            overlap its scene (exit 3; the message names the key, the file and the fix).
        SceneMismatchError: the mask is on another grid than its scene under ``align: strict``.
    """
    key = f"input.mask_{label}"
    source = mask_name(value, label, item, storage)
    grid, nodata, dtype = _inspect(source, key, storage)
    if rule.bits and dtype.startswith("float"):
        raise InputError(
            f"{key} {source.redacted!r} is {dtype}, but input.mask_preset {rule.name!r} tests bits of an "
            "integer quality layer; give the integer layer (e.g. QA_PIXEL as uint16)"
        )
    path = source.text if source.remote else str(Path(source.text).resolve())
    base = MaskSource(path=path, key=key, rule=rule, offset=(0, 0), height=grid.height, width=grid.width,
                      nodata=nodata, storage=storage)
    if grid.same(scene):
        if scene_warp is None:
            return base
        return replace(base, height=target.height, width=target.width, warp=replace(scene_warp, resampling="nearest"))
    if align == "strict":
        raise SceneMismatchError(
            f"{key} {source.redacted!r} is not on the grid of the {label} scene: "
            f"{_difference(grid, scene)}. Resample the mask onto its scene's grid, or pass "
            "--set input.align=reproject to warp it onto the output grid (nearest)"
        )
    _check_overlap(source, key, grid, target)
    warp = WarpSpec(target.crs_wkt, target.transform, target.height, target.width, "nearest")
    return replace(base, height=target.height, width=target.width, warp=warp)


def _inspect(source: Source, key: str, storage: StorageConfig | None) -> tuple[GridOf, float | None, str]:
    """The mask's grid, nodata and dtype; reading its first and last pixel catches a truncated file."""
    name = source.redacted
    if not source.remote:
        path = Path(source.text)
        if not path.exists():
            raise InputError(f"{key} {name!r} does not exist; check the path (or set {key}: null)")
        if path.is_dir():
            raise InputError(f"{key} {name!r} is a directory, not a mask raster")
    try:
        with open_raster(source, storage) as src:
            grid = GridOf(src.crs, src.transform, src.height, src.width)
            nodata, dtype = src.nodata, src.dtypes[0]
            for r, c in ((0, 0), (src.height - 1, src.width - 1)):
                src.read(1, window=((r, r + 1), (c, c + 1)))
    except InputError:
        raise
    except Exception as exc:  # rasterio raises several types for unreadable files
        known = remote_failure(key, source.text, exc) if source.remote else None
        if known is not None:
            raise known from exc
        raise InputError(
            f"{key} {name!r} cannot be read as a mask raster ({'; '.join(gdal_messages(exc)) or exc}); "
            "give a GeoTIFF (or another GDAL raster) whose first band flags the pixels not observed"
        ) from exc
    if grid.crs is None:
        raise InputError(f"{key} {name!r} has no CRS; georeference it (e.g. gdal_edit.py -a_srs) on its scene's grid")
    return grid, None if nodata is None else float(nodata), str(dtype)


def _difference(mask: GridOf, scene: GridOf) -> str:
    parts = []
    if mask.crs != scene.crs:
        names = [crs.to_string() if crs else None for crs in (mask.crs, scene.crs)]
        parts.append(f"CRS {names[0]!r} vs {names[1]!r}")
    if (mask.height, mask.width) != (scene.height, scene.width):
        parts.append(f"shape {(mask.height, mask.width)} vs {(scene.height, scene.width)}")
    if not mask.transform.almost_equals(scene.transform, precision=1e-9):
        parts.append(f"transform {tuple(mask.transform)[:6]} vs {tuple(scene.transform)[:6]}")
    return "; ".join(parts)


def _check_overlap(source: Source, key: str, mask: GridOf, target: Grid) -> None:
    from rasterio.warp import transform_bounds

    xs = [mask.transform * (c, r) for r in (0, mask.height) for c in (0, mask.width)]
    bounds = (min(x for x, _ in xs), min(y for _, y in xs), max(x for x, _ in xs), max(y for _, y in xs))
    west, south, east, north = transform_bounds(mask.crs, target.crs, *bounds)
    ts = [target.affine * (c, r) for r in (0, target.height) for c in (0, target.width)]
    w1, s1 = min(x for x, _ in ts), min(y for _, y in ts)
    e1, n1 = max(x for x, _ in ts), max(y for _, y in ts)
    if west >= e1 or east <= w1 or south >= n1 or north <= s1:
        raise InputError(
            f"{key} {source.redacted!r} does not overlap the scenes: it covers {(west, south, east, north)}, "
            f"the output grid {(w1, s1, e1, n1)} in t1's CRS; give the mask of this scene"
        )
