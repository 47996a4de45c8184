"""Opening and validating scene pairs: every bad input gets exit 3 (or 2) and a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import InputConfig, load_config
from s2c_batch.pipeline.errors import ConfigError, InputError, SceneMismatchError
from s2c_batch.pipeline.inputs.reader import read_window
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import TRANSFORM, make_pair, read_band, write_tif


def _img(h: int = 64, w: int = 80, c: int = 3, dtype: str = "uint8", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 200, (c, h, w)).astype(dtype)


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code)


def test_open_pair__missing_file_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    out = tmp_path / "out"
    assert _exit_code(["run", str(t1), str(tmp_path / "nope.tif"), "--out", str(out), "--config", "cva"]) == 3
    assert "t2 scene" in capsys.readouterr().err and not out.exists()


def test_open_pair__not_a_raster(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tif"
    bad.write_text("hello")
    with pytest.raises(InputError, match=r"t1 scene .*notes\.tif' cannot be opened as a raster"):
        open_pair(bad, bad, InputConfig())


def test_open_pair__truncated_geotiff(tmp_path: Path) -> None:
    good = write_tif(tmp_path / "good.tif", _img(300, 300))
    data = good.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t2 scene .*cut\.tif' .*(corrupt or truncated|cannot be opened)"):
        open_pair(good, cut, InputConfig())


def test_open_pair__different_crs_strict_names_both(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    t2 = write_tif(tmp_path / "b.tif", _img(), crs="EPSG:32632")
    with pytest.raises(SceneMismatchError, match=r"CRS 'EPSG:32631' vs 'EPSG:32632'.*input\.align=reproject"):
        open_pair(t1, t2, InputConfig())
    assert _exit_code(["plan", str(t1), str(t2), "--config", "cva"]) == 3


def test_open_pair__different_shape_strict(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    t2 = write_tif(tmp_path / "b.tif", _img(60, 80))
    with pytest.raises(SceneMismatchError, match=r"shape \(64, 80\) vs \(60, 80\)"):
        open_pair(t1, t2, InputConfig())


def test_open_pair__no_overlap(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    far = Affine(0.5, 0, TRANSFORM.c + 10_000, 0, -0.5, TRANSFORM.f)
    t2 = write_tif(tmp_path / "b.tif", _img(), transform=far)
    with pytest.raises(InputError, match="do not overlap"):
        open_pair(t1, t2, InputConfig(align="reproject"))


def test_open_pair__too_few_bands(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img(c=1))
    with pytest.raises(InputError, match=r"has 1 band\(s\) but input\.bands asks for \[1, 2, 3\]"):
        open_pair(t1, t1, InputConfig())


def test_open_pair__unsupported_dtype(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img(dtype="int8"))
    with pytest.raises(InputError, match="dtype 'int8', which is not supported"):
        open_pair(t1, t1, InputConfig())


def test_open_pair__float_needs_scale(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img(dtype="float32") / 255)
    with pytest.raises(ConfigError, match="set input.scale"):
        open_pair(t1, t1, InputConfig())
    assert open_pair(t1, t1, InputConfig(scale=1.0)).t1.scale == 1.0


def test_open_pair__bbox_outside_scene(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    with pytest.raises(InputError, match="does not overlap t1"):
        open_pair(t1, t1, InputConfig(), bbox=(0.0, 0.0, 1.0, 1.0))


def test_read_window__boundless_and_nodata(tmp_path: Path) -> None:
    img = _img(20, 30)
    img[:, 0, 0] = 7
    t1 = write_tif(tmp_path / "a.tif", img, nodata=7)
    pair = open_pair(t1, t1, InputConfig())
    data, valid = read_window(pair.t1, Window(-5, -5, 40, 50))
    assert data.shape == (3, 40, 50) and valid.shape == (40, 50)
    assert not valid[:5].any() and not valid[:, :5].any() and not valid[25:].any()
    assert not valid[5, 5]  # the nodata pixel
    assert data.dtype == np.uint8 and (data[:, 6, 6] == img[:, 1, 1]).all()
    assert (data[:, 5, 5] == 0).all()


def test_run__bad_input_leaves_no_product(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "a.tif", _img())
    t2 = write_tif(tmp_path / "b.tif", _img(60, 80))
    out = tmp_path / "out"
    with pytest.raises(SceneMismatchError):
        run_change_detection(t1, t2, out, load_config("cva"), progress=False)
    assert not out.exists()


@pytest.mark.cluster
def test_run__reproject_warps_t2_onto_t1_grid(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    img = _img(300, 320, seed=5)
    t1 = write_tif(tmp_path / "a.tif", img)
    shifted = Affine(0.5, 0, TRANSFORM.c + 10 * 0.5, 0, -0.5, TRANSFORM.f - 20 * 0.5)
    t2 = write_tif(tmp_path / "b.tif", img[:, 20:, 10:].copy(), transform=shifted)
    cfg = load_config("cva", ["input.align=reproject", "input.resampling=nearest",
                              "tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=256",
                              "tiling.chunk_size=128"])
    run_change_detection(t1, t2, tmp_path / "out", cfg, scheduler=dask_cluster.address, progress=False)
    prob = read_band(tmp_path / "out" / "change_prob.tif")
    assert prob.shape == (300, 320)
    assert (prob[20:, 10:][:-20, :-10] == 0).all(), "same pixels after warping must show no change"
    assert (prob[:20] == 255).all() and (prob[:, :10] == 255).all(), "no t2 pixels there: nodata"


def test_main__exit_code_2_for_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1, t2 = make_pair(tmp_path, 64, 64)
    code = _exit_code(["run", str(t1), str(t2), "--out", str(tmp_path / "o"), "--config", "cva",
                       "--set", "tiling.bogus=1"])
    assert code == 2 and "valid keys of section 'tiling'" in capsys.readouterr().err
    assert _exit_code(["run", str(t1)]) == 2  # usage error: missing arguments
