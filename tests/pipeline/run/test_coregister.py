"""Co-registration QA in a run, and ``input.coregister: global`` with its fingerprint and resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pystac
import pytest
import yaml
from scipy import ndimage

from s2c_batch.pipeline.batch.runner import decide
from s2c_batch.pipeline.batch.runs_file import load_runs_file
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.run.coregister import shifted_pair
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import read_band, write_tif

SMALL = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128",
         "input.coreg_window=128"]
SIZE = 384


def _texture_pair(tmp: Path, shift: tuple[float, float], *, water: bool = False) -> tuple[Path, Path]:
    """A textured uint8 scene and the same scene moved by ``shift`` (t1's (r, c) is t2's (r + dy, c + dx))."""
    rng = np.random.default_rng(4)
    base = np.stack([ndimage.gaussian_filter(rng.normal(0, 45, (SIZE, SIZE)), 1.3) + 128 for _ in range(3)])
    if water:  # the left third is open water: noise only, another draw on each date
        base[:, :, :128] = 90 + rng.normal(0, 0.8, (3, SIZE, 128))
    moved = ndimage.shift(base, (0, *shift), order=3, mode="nearest")
    if water:
        moved[:, :, :128] = 90 + rng.normal(0, 0.8, (3, SIZE, 128))
    moved[:, 200:240, 250:300] = 30  # a real change
    a = np.clip(base, 1, 254).astype(np.uint8)
    b = np.clip(moved + rng.normal(0, 1.0, moved.shape), 1, 254).astype(np.uint8)
    return write_tif(tmp / "t1.tif", a), write_tif(tmp / "t2.tif", b)


def _run(t1: Path, t2: Path, out: Path, scheduler: str, *sets: str, resume: bool = False) -> dict:  # type: ignore[type-arg]
    cfg = load_config("cva", [*SMALL, *sets])
    run_change_detection(t1, t2, out, cfg, scheduler=scheduler, progress=False, resume=resume)
    return json.loads((out / "run.json").read_text())


@pytest.mark.cluster
def test_run__qa_records_each_block_the_median_and_warns_above_the_limit(
        tmp_path: Path, dask_cluster, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    t1, t2 = _texture_pair(tmp_path, (0.4, 1.7), water=True)
    with caplog.at_level(logging.WARNING, logger="s2c_batch.pipeline.run.coregister"):
        run = _run(t1, t2, tmp_path / "out", dask_cluster.address)
    qa = run["coregistration"]
    assert qa["blocks_total"] == 9 and len(qa["blocks"]) == 9
    water = [b for b in qa["blocks"] if b["block"][1] == 0]
    assert all(not b["used"] and b["confidence"] < 0.2 and b["reason"] == "low confidence" for b in water)
    changed = next(b for b in qa["blocks"] if b["block"] == [1, 2])  # holds the planted change
    assert not changed["used"] and changed["reason"] == "quadrants disagree"
    assert qa["blocks_used"] == 5
    assert qa["median_shift_px"] == pytest.approx([0.4, 1.7], abs=0.1)
    assert qa["median_shift_m"] == pytest.approx([0.5 * v for v in qa["median_shift_px"]])  # 0.5 m pixels
    assert qa["above_max"] and sorted(qa["blocks_above_max"]) == sorted(b["block"] for b in qa["blocks"] if b["used"])
    assert qa["applied_shift_px"] is None and qa["coregister"] == "none"
    assert max(qa["spread_px"]) < 0.1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("t2 lies (+0.4" in m and "above input.max_shift_px=0.5" in m and "input.coregister=global" in m
               for m in warned), warned
    item = pystac.Item.from_file(str(tmp_path / "out" / "stac-item.json"))
    assert item.properties["s2c:coregistration"]["median_shift_px"] == qa["median_shift_px"]


@pytest.mark.cluster
def test_run__coregister_global_corrects_t2_is_fingerprinted_and_resumed(
        tmp_path: Path, dask_cluster, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    t1, aligned = _texture_pair(tmp_path, (0.0, 0.0))
    (tmp_path / "moved").mkdir()
    _, moved = _texture_pair(tmp_path / "moved", (3.0, -2.0))
    _run(t1, aligned, tmp_path / "ref", dask_cluster.address)
    ref = read_band(tmp_path / "ref" / "change_prob.tif").astype(int)
    plain = _run(t1, moved, tmp_path / "plain", dask_cluster.address)
    out = tmp_path / "fixed"
    fixed = _run(t1, moved, out, dask_cluster.address, "input.coregister=global")
    assert fixed["coregistration"]["applied_shift_px"] == pytest.approx([3.0, -2.0], abs=0.05)
    assert fixed["fingerprint"] != plain["fingerprint"]
    got = read_band(out / "change_prob.tif")
    before = read_band(tmp_path / "plain" / "change_prob.tif").astype(int)
    inside = (slice(8, -8), slice(8, -8))  # t2's moved edges are unknown after the correction
    error = lambda prob: float(np.abs(prob[inside].astype(int) - ref[inside]).mean())  # noqa: E731
    assert error(got) < error(before) / 10, (error(got), error(before))
    assert (got[-3:] == 255).all() and (got[:, :2] == 255).all()  # no t2 pixel reaches there any more
    assert not (got[: SIZE - 3, 2:] == 255).any()
    # resume: the saved shift, not a new measurement, and the same fingerprint
    (out / "change_prob.tif").unlink()
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "status": "failed"}))
    with caplog.at_level(logging.INFO, logger="s2c_batch.pipeline.run.runner"):
        again = _run(t1, moved, out, dask_cluster.address, "input.coregister=global", resume=True)
    assert any("reusing the co-registration QA (applied shift [2.9" in r.getMessage() for r in caplog.records)
    assert again["fingerprint"] == fixed["fingerprint"] and again["blocks"]["reused"] == 9
    assert again["coregistration"] == fixed["coregistration"]
    np.testing.assert_array_equal(read_band(out / "change_prob.tif"), got)
    # batch decides from the same saved shift: the run is complete, so it is skipped
    doc = {"defaults": {"config": "cva", "set": [*SMALL, "input.coregister=global"]},
           "runs": [{"t1": str(t1), "t2": str(moved), "out": str(out)}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    assert decide(load_runs_file(tmp_path / "RUNS.yaml").runs[0])[0] == "skip"


def test_shifted_pair__inside_a_bbox_is_the_crop_of_the_whole_scene(tmp_path: Path) -> None:
    """The corrected t2 lies on t1's whole grid moved by the shift, so an AOI reads the scene's crop.

    (A run with ``--bbox`` measures the shift on the AOI's own blocks, so its median may
    differ from the whole scene's by a few hundredths; at the same shift the pixels agree.)
    """
    t1, t2 = _texture_pair(tmp_path, (0.0, 0.0))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[200:230, 100:140] = 1
    write_tif(tmp_path / "m.tif", mask[None])
    cfg = load_config("cva", [f"input.mask_t2={tmp_path / 'm.tif'}"]).input
    rows, cols = slice(128, 320), slice(64, 256)
    x0, y0 = 500000.0 + cols.start * 0.5, 5000000.0 - rows.stop * 0.5
    aoi = open_pair(t1, t2, cfg, bbox=(x0, y0, x0 + 192 * 0.5, y0 + 192 * 0.5))
    assert aoi.t1.offset == (128, 64) and (aoi.grid.height, aoi.grid.width) == (192, 192)
    for shift in ((3.0, -2.0), (0.4, 1.7)):
        reader.close_handles()
        whole = reader.read_window(shifted_pair(open_pair(t1, t2, cfg), shift, "bilinear").t2,
                                   reader.Window(0, 0, SIZE, SIZE))
        got = reader.read_window(shifted_pair(aoi, shift, "bilinear").t2, reader.Window(0, 0, 192, 192))
        np.testing.assert_array_equal(got[0], whole[0][:, rows, cols])
        np.testing.assert_array_equal(got[1], whole[1][rows, cols])
        assert not got[1].all()  # the moved cloud mask reaches into the AOI


def test_shifted_pair__t2_and_its_mask_move_together(tmp_path: Path) -> None:
    t1, t2 = _texture_pair(tmp_path, (0.0, 0.0))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[100:110, 50:60] = 1
    write_tif(tmp_path / "m.tif", mask[None])
    pair = open_pair(t1, t2, load_config("cva", [f"input.mask_t2={tmp_path / 'm.tif'}"]).input)
    moved = shifted_pair(pair, (3.0, -2.0), "nearest")
    assert moved.t2.warp is not None and moved.t2.warp.shift_px == (3.0, -2.0)
    reader.close_handles()
    data, valid = reader.read_window(moved.t2, reader.Window(0, 0, SIZE, SIZE))
    raw, _ = reader.read_window(pair.t2, reader.Window(0, 0, SIZE, SIZE))
    # corrected (r, c) = uncorrected (r + 3, c - 2)
    np.testing.assert_array_equal(data[:, 0:SIZE - 3, 2:], raw[:, 3:, : SIZE - 2])
    expected = np.ones((SIZE, SIZE), bool)
    expected[97:107, 52:62] = False
    expected[SIZE - 3 :, :], expected[:, :2] = False, False
    np.testing.assert_array_equal(valid, expected)
