"""Pixel areas: planar in projected CRSs (with their units), geodesic by row in geographic ones."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS

from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.products.area import is_geographic, planar_pixel_area_m2, row_areas_m2


def _grid(crs: str, transform: tuple[float, ...], h: int = 10, w: int = 10) -> Grid:
    return Grid(CRS.from_string(crs).to_wkt(), transform, h, w)  # type: ignore[arg-type]


def test_planar_pixel_area_m2__metres_and_us_feet() -> None:
    assert planar_pixel_area_m2(_grid("EPSG:32631", (0.5, 0, 5e5, 0, -0.5, 5e6))) == 0.25
    feet = _grid("EPSG:2263", (10.0, 0, 9e5, 0, -10.0, 2e5))  # NY Long Island, US survey feet
    assert planar_pixel_area_m2(feet) == pytest.approx(100 * (1200 / 3937) ** 2, rel=1e-9)
    assert (row_areas_m2(feet) == planar_pixel_area_m2(feet)).all()


def test_row_areas_m2__geographic_rows_shrink_towards_the_pole() -> None:
    grid = _grid("EPSG:4326", (0.001, 0, 10.0, 0, -0.001, 60.0), h=1000)
    assert is_geographic(grid)
    areas = row_areas_m2(grid)
    assert (np.diff(areas) > 0).all()  # rows go south, cells grow
    lat = 60.0 - 0.0005
    approx = (0.001 * np.pi / 180 * 6371008.8) ** 2 * np.cos(np.radians(lat))
    assert areas[0] == pytest.approx(approx, rel=1e-2)  # ellipsoid vs sphere
    with pytest.raises(ValueError, match="geographic; pixel areas vary by row"):
        planar_pixel_area_m2(grid)
