"""A series block task: the same products and counts whatever strips it reads, against the kernel and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS as RioCRS

from s2c_batch.kernels.raster.series import series_products
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.series import products
from s2c_batch.pipeline.series.products import SERIES_PRODUCTS, series_block

from testutils import CRS, TRANSFORM


@pytest.mark.parametrize("budget", [products.STACK_BYTES, 3 * 40 * 7])  # one strip; strips of 7 rows
def test_series_block__strips_give_the_block_and_its_counts(tmp_path: Path, budget: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(products, "STACK_BYTES", budget)
    grid = Grid(RioCRS.from_string(CRS).to_wkt(), tuple(TRANSFORM)[:6], 30, 40)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    masks = rng.choice(np.array([0, 0, 0, 1, 255], np.uint8), size=(3, 30, 40))
    pairs = []
    for j, mask in enumerate(masks):
        path = FolderLocation(tmp_path / f"pair{j}.zarr")
        store.create_store(path, grid, ["change_mask"], shard=64, chunk=32, attrs={})
        store.write_block(path, Window(0, 0, 30, 40), {"change_mask": mask})
        pairs.append(path)
    out = FolderLocation(tmp_path / "series.zarr")
    store.create_store(out, grid, SERIES_PRODUCTS, shard=64, chunk=32, attrs={})
    rows = np.linspace(1.0, 2.0, 30)
    report = series_block(pairs, out, (0, 0), Window(0, 0, 30, 40), persistence=1, against="previous", n_dates=4,
                          row_areas=rows)
    want = series_products(masks, persistence=1, against="previous")
    for name, arr in want.as_dict().items():
        np.testing.assert_array_equal(store.read_window(out, name, Window(0, 0, 30, 40)), arr, err_msg=name)
    area = np.broadcast_to(rows[:, None], (30, 40))
    first = want.first_change
    assert report.first_pixels.tolist() == [int((first == t).sum()) for t in range(4)]
    np.testing.assert_allclose(report.first_area, [area[first == t].sum() for t in range(4)])
    assert report.pair_changed.tolist() == [int((m == 1).sum()) for m in masks]
    np.testing.assert_allclose(report.pair_unknown_area, [area[m == 255].sum() for m in masks])
    never = first == 255
    assert report.unknown_pixels == int(never.sum())
    assert report.pending_pixels == int(want.pending.sum()) > 0
    assert report.flicker_pixels == int(((first == 0) & (want.change_count > 0) & ~want.pending).sum()) > 0
    np.testing.assert_allclose(report.pending_area, area[want.pending].sum())
