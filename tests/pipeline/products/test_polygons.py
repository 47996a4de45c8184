"""Change polygons from a multi-block store: one per region, never cut at a block seam."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from distributed import Client
from rasterio.crs import CRS as RioCRS
from scipy import ndimage

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.products.area import row_areas_m2
from s2c_batch.pipeline.products.polygons import write_polygons

from testutils import CRS, TRANSFORM

BLOCK = 64
NAMES = ("background", "bareland", "water", "building")
FOUR = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def _grid(h: int, w: int, crs: str = CRS, transform: tuple[float, ...] = tuple(TRANSFORM)[:6]) -> Grid:
    return Grid(RioCRS.from_string(crs).to_wkt(), transform, h, w)  # type: ignore[arg-type]


def _write_store(path: Path, grid: Grid, mask: np.ndarray, *, classes: bool = True) -> None:
    names = ["change_prob", "change_mask", *(["class_t1", "class_t2"] if classes else [])]
    store.create_store(path, grid, names, shard=BLOCK, chunk=32, attrs={})
    prob = np.where(mask == 1, 254, 20).astype(np.uint8)
    prob[mask == 255] = 255
    c1 = np.where(mask == 255, 255, 1).astype(np.uint8)
    c2 = np.where(mask == 255, 255, 3).astype(np.uint8)
    c2[:, grid.width // 2 :][mask[:, grid.width // 2 :] != 255] = 2
    for r in range(0, grid.height, BLOCK):
        for c in range(0, grid.width, BLOCK):
            win = Window(r, c, min(BLOCK, grid.height - r), min(BLOCK, grid.width - c))
            sl = win.slices()
            arrays = {"change_prob": prob[sl], "change_mask": mask[sl]}
            if classes:
                arrays.update(class_t1=c1[sl], class_t2=c2[sl])
            store.write_block(path, win, arrays)


def _planted(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[40:100, 50:140] = 1          # a rectangle over four blocks (seams at row 64, cols 64 and 128)
    mask[60:70, 60:70] = 0            # with a hole on a seam corner
    mask[130:135, 10:180] = 1         # a thin bar across three blocks
    mask[100:180, 150:155] = 1        # a vertical bar crossing rows 128 and touching the thin bar
    rows, cols = np.mgrid[0:h, 0:w]
    mask[((rows - 150) ** 2 + (cols - 60) ** 2 < 18**2)] = 1  # a disc on the seam at row 128... and col 64
    mask[0:5, 0:5] = 1                # a small region that stays inside one block
    mask[190:, :20] = 255             # nodata
    mask[127, 30:40] = 1              # ends exactly at a seam: row 127 is the last row of block row 1
    return mask


def _boundary_on_seam_is_real(geom_px: shapely.Geometry, mask: np.ndarray) -> None:
    """Every boundary edge on a seam line separates changed from unchanged pixels."""
    changed = mask == 1
    rings = [geom_px.exterior, *geom_px.interiors]
    for ring in rings:
        xy = np.asarray(ring.coords)
        for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:], strict=True):
            if x0 == x1 and x0 % BLOCK == 0 and 0 < x0 < mask.shape[1]:
                for y in range(int(min(y0, y1)), int(max(y0, y1))):
                    assert changed[y, int(x0) - 1] != changed[y, int(x0)], f"cut at seam x={x0}, row {y}"
            if y0 == y1 and y0 % BLOCK == 0 and 0 < y0 < mask.shape[0]:
                for x in range(int(min(x0, x1)), int(max(x0, x1))):
                    assert changed[int(y0) - 1, x] != changed[int(y0), x], f"cut at seam y={y0}, col {x}"


@pytest.mark.cluster
def test_write_polygons__regions_crossing_block_seams_are_whole(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    h, w = 200, 230  # 4 x 4 blocks of 64
    grid = _grid(h, w)
    mask = _planted(h, w)
    _write_store(tmp_path / "s.zarr", grid, mask)
    with Client(dask_cluster.address) as client:
        path = write_polygons(client, tmp_path / "s.zarr", tmp_path / "changes.parquet", grid,
                              block=BLOCK, class_names=NAMES)
    df = gpd.read_parquet(path)
    whole, n = ndimage.label(mask == 1, structure=FOUR)
    assert len(df) == n
    assert sorted(df["pixels"]) == sorted(np.bincount(whole.ravel())[1:].tolist())
    assert df.crs.to_epsg() == 32631
    assert (df["area_m2"] == df["pixels"] * 0.25).all()
    assert np.allclose(df.geometry.area, df["area_m2"])
    assert df.geometry.is_valid.all() and (df.geometry.geom_type == "Polygon").all()
    inv = ~TRANSFORM
    for geom in df.geometry:
        geom_px = shapely.affinity.affine_transform(geom, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
        _boundary_on_seam_is_real(geom_px, mask)
    # the rectangle with its hole, exactly, in pixel coordinates
    rect = shapely.box(50, 40, 140, 100).difference(shapely.box(60, 60, 70, 70))
    rect_geo = shapely.affinity.affine_transform(rect, [TRANSFORM.a, TRANSFORM.b, TRANSFORM.d, TRANSFORM.e,
                                                        TRANSFORM.c, TRANSFORM.f])
    assert any(g.equals(rect_geo) for g in df.geometry)
    # attributes merged over all pieces: probability 254 everywhere -> 1.0; from/to by majority
    assert np.allclose(df["mean_prob"], 1.0)
    assert set(df["from_class"]) == {"bareland"} and set(df["to_class"]) <= {"building", "water"}
    bar = df.loc[df["pixels"].idxmax()]
    assert bar["from_class_id"] == 1


@pytest.mark.cluster
def test_write_polygons__no_change_writes_an_empty_table(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    grid = _grid(70, 90)
    _write_store(tmp_path / "s.zarr", grid, np.zeros((70, 90), np.uint8), classes=False)
    with Client(dask_cluster.address) as client:
        path = write_polygons(client, tmp_path / "s.zarr", tmp_path / "changes.parquet", grid, block=BLOCK)
    df = gpd.read_parquet(path)
    assert len(df) == 0 and {"id", "pixels", "area_m2", "mean_prob", "geometry"} <= set(df.columns)


@pytest.mark.cluster
def test_write_polygons__geographic_crs_gets_geodesic_areas(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    grid = _grid(80, 100, "EPSG:4326", (0.0001, 0.0, 10.0, 0.0, -0.0001, 60.0))
    mask = np.zeros((80, 100), np.uint8)
    mask[10:70, 20:90] = 1
    _write_store(tmp_path / "s.zarr", grid, mask, classes=False)
    with Client(dask_cluster.address) as client:
        path = write_polygons(client, tmp_path / "s.zarr", tmp_path / "changes.parquet", grid, block=BLOCK)
    df = gpd.read_parquet(path)
    expected = (row_areas_m2(grid, np.arange(10, 70)) * 70).sum()
    assert len(df) == 1 and df["area_m2"].iloc[0] == pytest.approx(expected, rel=1e-6)
    assert 60 < df["area_m2"].iloc[0] / 4200 < 64  # ~ 5.6 m x 11.1 m cells at 60 degrees north
