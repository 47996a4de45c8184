"""Ground area of output pixels, and the changed area of a finished run.

Projected CRSs: every pixel has the same area, ``|a * e - b * d|`` in squared
CRS units, converted to m2 with the CRS's linear unit (metres as is, US feet
times 0.3048**2, ...). Geographic CRSs (degrees): a pixel's area depends on its
latitude, so each row's cells get their geodesic area on the CRS's ellipsoid
(pyproj ``Geod``); cells of one row of a north-up grid all have that area.

:func:`change_statistics` counts changed and valid pixels of the ``change_mask``
array with one Dask task per output block (reading windows of the Zarr store)
and returns the changed area in km2 and the observed and unknown area: a pixel is
*unknown* (``change_mask`` 255) when at least one date did not observe it (nodata,
a mask band, an external mask, outside a footprint), *observed* otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from pyproj import CRS as ProjCRS

from s2c_batch.kernels.raster.encode import NODATA
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.locate import as_location


@dataclass(frozen=True)
class ChangeStats:
    """Pixel counts and changed area of one run.

    Attributes:
        pixels: pixels of the output grid (height * width).
        valid_pixels: pixels that are not nodata.
        changed_pixels: pixels with ``change_mask == 1``.
        changed_area_km2: ground area of the changed pixels.
        area_method: ``planar`` (projected CRS) or ``geodesic`` (geographic CRS).
        observed_area_m2: ground area of the pixels both dates observed.
        unknown_area_m2: ground area of the pixels at least one date did not observe.
        The unknown area in km2 is :attr:`unknown_area_km2`.
    """

    pixels: int
    valid_pixels: int
    changed_pixels: int
    changed_area_km2: float
    area_method: Literal["planar", "geodesic"]
    observed_area_m2: float = 0.0
    unknown_area_m2: float = 0.0

    @property
    def unknown_pixels(self) -> int:
        """Pixels at least one date did not observe (``change_mask`` 255)."""
        return self.pixels - self.valid_pixels

    @property
    def observed_pct(self) -> float:
        """Observed share of the grid's ground area, in percent."""
        total = self.observed_area_m2 + self.unknown_area_m2
        return 100.0 * self.observed_area_m2 / total if total else 0.0

    @property
    def unknown_pct(self) -> float:
        """Unknown share of the grid's ground area, in percent."""
        total = self.observed_area_m2 + self.unknown_area_m2
        return 100.0 * self.unknown_area_m2 / total if total else 0.0

    @property
    def unknown_area_km2(self) -> float:
        """Ground area of the unknown pixels in km2 (the batch summary's and series' unit)."""
        return self.unknown_area_m2 / 1e6

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able fields."""
        return asdict(self)

    def coverage(self) -> dict[str, Any]:
        """What ``run.json`` records under ``coverage`` (areas in m2 and % of the grid's ground area)."""
        return {
            "pixels": self.pixels, "observed_pixels": self.valid_pixels, "unknown_pixels": self.unknown_pixels,
            "observed_area_m2": round(self.observed_area_m2, 3), "unknown_area_m2": round(self.unknown_area_m2, 3),
            "observed_pct": round(self.observed_pct, 4), "unknown_pct": round(self.unknown_pct, 4),
            "changed_pixels": self.changed_pixels, "changed_area_km2": round(self.changed_area_km2, 6),
            "area_method": self.area_method,
        }

    @classmethod
    def from_coverage(cls, doc: dict[str, Any]) -> ChangeStats:
        """The statistics a run recorded in ``run.json`` (:meth:`coverage`).

        Raises:
            KeyError, TypeError: ``doc`` is not such a record.
        """
        return cls(pixels=int(doc["pixels"]), valid_pixels=int(doc["observed_pixels"]),
                   changed_pixels=int(doc["changed_pixels"]), changed_area_km2=float(doc["changed_area_km2"]),
                   area_method=doc["area_method"], observed_area_m2=float(doc["observed_area_m2"]),
                   unknown_area_m2=float(doc["unknown_area_m2"]))


def is_geographic(grid: Grid) -> bool:
    """True when the grid's CRS is in angular units (degrees)."""
    return bool(ProjCRS.from_wkt(grid.crs_wkt).is_geographic)


def planar_pixel_area_m2(grid: Grid) -> float:
    """Area of one pixel of a projected grid in m2.

    Raises:
        ValueError: the CRS is geographic (use :func:`row_areas_m2`).
    """
    crs = ProjCRS.from_wkt(grid.crs_wkt)
    if crs.is_geographic:
        raise ValueError(f"CRS {crs.name!r} is geographic; pixel areas vary by row")
    a, b, _, d, e, _ = grid.transform
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return abs(a * e - b * d) * factor * factor


def pixel_size_m(grid: Grid) -> tuple[float, float]:
    """Ground length in metres of one pixel step down a column and along a row, at the grid's centre.

    Projected CRSs: the transform's column and row vectors in the CRS's linear unit, in
    metres. Geographic CRSs: geodesic distances on the CRS's ellipsoid from the centre pixel.

    Returns:
        ``(row_step_m, col_step_m)``.
    """
    a, b, c, d, e, f = grid.transform
    crs = ProjCRS.from_wkt(grid.crs_wkt)
    if not crs.is_geographic:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return float(np.hypot(b, e)) * factor, float(np.hypot(a, d)) * factor
    geod = crs.get_geod()
    cx, cy = grid.width / 2, grid.height / 2
    lon0, lat0 = c + a * cx + b * cy, f + d * cx + e * cy
    _, _, down = geod.inv(lon0, lat0, lon0 + b, lat0 + e)  # type: ignore[union-attr]
    _, _, along = geod.inv(lon0, lat0, lon0 + a, lat0 + d)  # type: ignore[union-attr]
    return float(down), float(along)


def row_areas_m2(grid: Grid, rows: np.ndarray | None = None) -> np.ndarray:
    """Ground area in m2 of one pixel of each row.

    Args:
        grid: the output grid (north-up for geographic CRSs).
        rows: row indexes; ``None`` = every row.

    Returns:
        float64 ``[len(rows)]``.
    """
    rows = np.arange(grid.height) if rows is None else np.asarray(rows)
    crs = ProjCRS.from_wkt(grid.crs_wkt)
    if not crs.is_geographic:
        return np.full(rows.shape, planar_pixel_area_m2(grid), np.float64)
    geod = crs.get_geod()
    a, _, c, _, e, f = grid.transform
    out = np.empty(rows.shape, np.float64)
    for i, r in enumerate(rows):
        lat0, lat1 = f + e * r, f + e * (r + 1)
        lons = [c, c + a, c + a, c]
        lats = [lat0, lat0, lat1, lat1]
        area, _ = geod.polygon_area_perimeter(lons, lats)  # type: ignore[union-attr]
        out[i] = abs(area)
    return out


def count_block(store_path: store.StorePath, window: Window) -> tuple[int, np.ndarray, np.ndarray]:
    """Per-row changed and valid pixel counts of one window of ``change_mask``.

    Returns:
        ``(row0, changed [h], valid [h])``: int64 counts for rows ``row0..row0+h``.
    """
    mask = store.read_window(store_path, "change_mask", window)
    return window.row, (mask == 1).sum(axis=1).astype(np.int64), (mask != NODATA).sum(axis=1).astype(np.int64)


def change_statistics(client: Any, store_path: store.StorePath, grid: Grid, *, block: int,
                      retries: int = 0) -> ChangeStats:
    """Count the changed pixels of a finished store and their area.

    Args:
        client: a ``distributed.Client``; one task per block of ``block`` pixels.
        store_path: the run's ``change.zarr`` (a folder, or its object-store location).
        grid: the output grid.
        block: window side of a task (the run's ``tiling.block_size``).
        retries: task retries.

    Returns:
        The run's counts and changed area.
    """
    windows = [Window(r, c, min(block, grid.height - r), min(block, grid.width - c))
               for r in range(0, grid.height, block) for c in range(0, grid.width, block)]
    path = as_location(store_path)
    futures = [client.submit(count_block, path, w, pure=False, retries=retries) for w in windows]
    changed_rows = np.zeros(grid.height, np.int64)
    valid_rows = np.zeros(grid.height, np.int64)
    for row0, changed, ok in client.gather(futures):
        changed_rows[row0 : row0 + len(changed)] += changed
        valid_rows[row0 : row0 + len(ok)] += ok
    areas = row_areas_m2(grid)
    observed = float((valid_rows * areas).sum())
    return ChangeStats(
        pixels=grid.height * grid.width, valid_pixels=int(valid_rows.sum()), changed_pixels=int(changed_rows.sum()),
        changed_area_km2=float((changed_rows * areas).sum()) / 1e6,
        area_method="geodesic" if is_geographic(grid) else "planar",
        observed_area_m2=observed, unknown_area_m2=float(((grid.width - valid_rows) * areas).sum()),
    )
