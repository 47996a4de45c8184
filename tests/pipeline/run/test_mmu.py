"""``output.min_area_m2`` on a real cluster: every region below the unit goes, from the mask and the polygons alike,
measured whole across block seams; without the key nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from scipy import ndimage

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import cva_oracle, read_band, write_tif

#: Four blocks by 64 across, two down: seams at row 64 and columns 64, 128.
BLOCKS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=64", "tiling.chunk_size=64"]
FOUR = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
UNIT_M2 = 5.0  # 20 pixels of 0.5 m

#: (rows, cols) of each planted change and whether the unit keeps it (pixels >= 20, counted whole).
PLANTED = [
    ((5, 6), (5, 6), False),           # 1 px
    ((10, 14), (10, 15), True),        # 20 px: exactly the unit
    ((20, 23), (20, 26), False),       # 18 px
    ((30, 33), (60, 68), True),        # 24 px over the seam at column 64 (12 + 12)
    ((40, 42), (61, 67), False),       # 12 px over the same seam (6 + 6)
    ((61, 67), (125, 131), True),      # 36 px over the corner of four blocks (9 each)
    ((58, 66), (10, 12), False),       # 16 px over the seam at row 64
    ((90, 100), (150, 160), True),     # 100 px inside one block
    ((100, 101), (20, 120), True),     # a line of 100 px over the seam at column 64
]


def _scene(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(4)
    base = np.full((3, 128, 192), 100.0) + rng.normal(0, 2, (3, 128, 192))
    t1, t2 = base.copy(), base + rng.normal(0, 2, base.shape)
    for (r0, r1), (c0, c1), _ in PLANTED:
        t2[:, r0:r1, c0:c1] = 250
    t1[:, 120:, :8] = 0  # nodata in a corner
    return (write_tif(folder / "t1.tif", np.clip(t1, 0, 255).astype(np.uint8), nodata=0),
            write_tif(folder / "t2.tif", np.clip(t2, 0, 255).astype(np.uint8), nodata=0))


@pytest.mark.cluster
def test_min_area__drops_small_regions_across_block_seams_from_mask_and_polygons(tmp_path: Path,
                                                                                  dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = _scene(tmp_path)
    oracle = cva_oracle(t1, t2)["change_mask"]
    labels, n = ndimage.label(oracle == 1, structure=FOUR)
    assert n == len(PLANTED)
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes[1:] * 0.25 < UNIT_M2) + 1  # region labels below the unit
    assert len(small) == sum(not keep for *_, keep in PLANTED)
    expected = oracle.copy()
    expected[np.isin(labels, small)] = 0

    out = tmp_path / "unit"
    cfg = load_config("cva", [*BLOCKS, f"output.min_area_m2={UNIT_M2}"])
    run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
    mask = read_band(out / "change_mask.tif")
    np.testing.assert_array_equal(mask, expected)
    record = json.loads((out / "run.json").read_text())
    assert record["min_area"] == {"min_area_m2": UNIT_M2, "regions": n, "regions_dropped": len(small),
                                  "regions_kept": n - len(small),
                                  "pixels_dropped": int(sizes[small].sum()),
                                  "area_dropped_m2": float(sizes[small].sum()) * 0.25}
    assert "min_area" in record["timings_s"]
    polygons = gpd.read_parquet(out / "changes.parquet")
    assert len(polygons) == n - len(small)
    assert (polygons["area_m2"] >= UNIT_M2).all()
    assert sorted(polygons["pixels"]) == sorted(int(sizes[i]) for i in range(1, n + 1) if i not in small)
    item = json.loads((out / "stac-item.json").read_text())
    assert item["properties"]["s2c:min_area"] == record["min_area"]

    plain = tmp_path / "plain"  # no key: the mask is the comparator's, and nothing is recorded
    run_change_detection(t1, t2, plain, load_config("cva", BLOCKS), scheduler=dask_cluster.address, progress=False)
    np.testing.assert_array_equal(read_band(plain / "change_mask.tif"), oracle)
    record = json.loads((plain / "run.json").read_text())
    assert "min_area" not in record and "min_area" not in record["timings_s"]
    assert len(gpd.read_parquet(plain / "changes.parquet")) == n
