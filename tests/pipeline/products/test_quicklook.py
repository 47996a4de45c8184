"""quicklook.png: three panels from decimated reads, change in colour, bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s2c_batch.kernels.raster.quicklook import CHANGE_RGB, UNKNOWN_RGB
from s2c_batch.pipeline.config import InputConfig, load_config
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.products.quicklook import PANEL_SIDE, read_scene_preview, write_quicklook
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import make_pair, write_tif

SMALL = ["tiling.tile_size=256", "tiling.overlap=64", "tiling.chunk_size=256", "tiling.block_size=256"]


@pytest.mark.cluster
def test_write_quicklook__three_panels_with_changes_in_colour(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 300, 620, seed=5, nodata=0)
    out = tmp_path / "out"
    res = run_change_detection(t1, t2, out, load_config("cva", SMALL), scheduler=dask_cluster.address,
                               progress=False)
    assert res.products["quicklook.png"] == str(out / "quicklook.png")
    image = np.asarray(Image.open(out / "quicklook.png").convert("RGB"))
    # 620 columns into PANEL_SIDE = 512 -> step 2 -> panels 310 wide, 150 high
    assert PANEL_SIDE == 512 and image.shape[1] == 3 * 310 + 2 * 4 and image.shape[0] >= 16 + 150
    change_panel = image[16:, 2 * (310 + 4) :]
    assert (change_panel == CHANGE_RGB).all(axis=2).any(), "no change drawn"
    first_panel = image[16:166, :310]
    assert (first_panel[:, :3] == 0).all(), "t1's nodata strip should be black"
    assert (change_panel[:150, :3] == UNKNOWN_RGB).all(), "unknown (t1's nodata strip) is drawn in its own colour"
    # again, written from the Zarr store when there are no COGs
    (out / "change_mask.tif").unlink()
    pair = open_pair(t1, t2, InputConfig())
    write_quicklook(out, pair, block=256)
    again = np.asarray(Image.open(out / "quicklook.png").convert("RGB"))
    assert again.shape == image.shape  # overview and stride may pick neighbouring pixels
    assert (again[16:, 2 * (310 + 4) :] == CHANGE_RGB).all(axis=2).any()


def test_read_scene_preview__decimated_read_never_holds_the_scene(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(1, 255, size=(3, 3000, 3000), dtype=np.uint8)  # 27 MB at full resolution
    write_tif(tmp_path / "t1.tif", data, tiled=True)
    write_tif(tmp_path / "t2.tif", data, tiled=True)
    del data
    pair = open_pair(tmp_path / "t1.tif", tmp_path / "t2.tif", InputConfig())
    tracemalloc.start()
    try:
        preview, valid = read_scene_preview(pair.t1, pair.grid, (500, 500))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert preview.shape == (3, 500, 500) and valid.all()
    assert peak < 4_000_000, f"peak {peak} bytes: the preview read more than a decimated window"
