"""The Zarr store's block write on a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.crs import CRS as RioCRS

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store

GRID = Grid(RioCRS.from_epsg(32631).to_wkt(), (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), 100, 150)
PRODUCTS = ("change_prob", "change_mask", "class_t1")


def test_write_block__on_written_after_each_product(tmp_path: Path) -> None:
    path = tmp_path / "change.zarr"
    store.create_store(path, GRID, PRODUCTS, shard=64, chunk=32, attrs={"fingerprint": "fp"})
    win = Window(64, 64, 36, 64)
    arrays = {name: np.full((36, 64), k, np.uint8) for k, name in enumerate(PRODUCTS)}
    written: list[tuple[int, int, list[int]]] = []

    def on_written(done: int, total: int) -> None:  # what is in the store at each call
        written.append((done, total, [int(store.read_window(path, n, win)[0, 0]) for n in PRODUCTS]))

    store.write_block(path, win, arrays, on_written=on_written)
    assert written == [(1, 3, [0, 255, 255]), (2, 3, [0, 1, 255]), (3, 3, [0, 1, 2])]
