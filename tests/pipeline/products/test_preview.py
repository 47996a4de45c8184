"""The quicklook's scene panels kept by the untiled block tasks equal the panels read from the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import InputConfig, load_config
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import ScenePair, open_pair
from s2c_batch.pipeline.products import quicklook
from s2c_batch.pipeline.products.preview import PreviewSampler, assemble, panel_shape, sampled_from_files
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import RealCluster, make_pair

BBOX = (500000.0 + 0.5 * 37, 5000000.0 - 0.5 * 1290, 500000.0 + 0.5 * 1150, 5000000.0 - 0.5 * 11)


def _sampled(pair: ScenePair, block: int, strip_rows: int, radius: int) -> list:
    """Every block's piece, read the way the untiled task reads: strips of rows with a halo."""
    shape = panel_shape(pair.grid)
    height, width = pair.grid.shape
    pieces = []
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            core = Window(r0, c0, min(block, height - r0), min(block, width - c0))
            sampler = PreviewSampler(pair.grid.shape, shape, core)
            for s0 in range(core.row, core.row_stop, strip_rows):
                rows = Window(s0, core.col, min(strip_rows, core.row_stop - s0), core.width)
                window = Window(rows.row - radius, rows.col - radius, rows.height + 2 * radius,
                                rows.width + 2 * radius)
                sampler.add(rows, window, reader.read_window(pair.t1, window), reader.read_window(pair.t2, window))
            pieces.append(sampler.piece())
    return pieces


@pytest.mark.parametrize(("block", "strip_rows", "radius", "bbox"),
                         [(512, 512, 0, None), (256, 100, 3, None), (512, 128, 0, BBOX)])
def test_block_samples__equal_the_panels_read_from_the_files(
    tmp_path: Path, block: int, strip_rows: int, radius: int, bbox: tuple[float, ...] | None
) -> None:
    t1, t2 = make_pair(tmp_path, 1300, 1170, seed=3, nodata=0, tiled=True)
    pair = open_pair(t1, t2, InputConfig(), bbox=bbox)  # type: ignore[arg-type]
    assert sampled_from_files(pair.t1) and sampled_from_files(pair.t2)
    shape = panel_shape(pair.grid)
    panels = assemble(_sampled(pair, block, strip_rows, radius), shape)
    assert panels is not None
    for source, (data, valid) in zip((pair.t1, pair.t2), panels, strict=True):
        want, want_valid = quicklook.read_scene_preview(source, pair.grid, shape)
        assert data.shape == want.shape and data.dtype == want.dtype
        np.testing.assert_array_equal(valid, want_valid)
        assert (~valid).any(), "the scene has nodata: the test must cover invalid pixels"
        np.testing.assert_array_equal(data[:, valid], want[:, want_valid])  # invalid pixels are black in the panel


def test_assemble__is_none_unless_every_panel_pixel_has_exactly_one_piece(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 600, 500, seed=1)
    pair = open_pair(t1, t2, InputConfig())
    pieces = _sampled(pair, 256, 256, 0)
    shape = panel_shape(pair.grid)
    assert assemble(pieces, shape) is not None
    assert assemble(pieces[1:], shape) is None  # a block reused by --resume sent no piece
    assert assemble([*pieces, pieces[0]], shape) is None
    assert assemble([], shape) is None


@pytest.mark.cluster
def test_run__untiled_quicklook_comes_from_the_blocks_and_equals_the_read_one(
    tmp_path: Path, dask_cluster: RealCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    t1, t2 = make_pair(tmp_path, 900, 1100, seed=7, nodata=0, tiled=True)
    cfg = load_config("cva", ["tiling.block_size=512", "tiling.chunk_size=256"])

    def no_read(*args: object, **kw: object) -> None:
        raise AssertionError("the quicklook read the scenes although every block sent its pixels")

    with monkeypatch.context() as mp:
        mp.setattr(quicklook, "read_scene_preview", no_read)
        res = run_change_detection(t1, t2, tmp_path / "out", cfg, scheduler=dask_cluster.address, progress=False)
    assert res.status == "complete"
    from_blocks = np.asarray(Image.open(tmp_path / "out" / "quicklook.png"))
    pair = open_pair(t1, t2, cfg.input)
    quicklook.write_quicklook(tmp_path / "out", pair, block=512, titles=("t1 t1.tif", "t2 t2.tif", "change"))  # reads
    np.testing.assert_array_equal(from_blocks, np.asarray(Image.open(tmp_path / "out" / "quicklook.png")))
