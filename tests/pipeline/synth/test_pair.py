"""Tests of s2c_batch.pipeline.synth.pair and the ``s2c-batch synth`` command."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.errors import ConfigError, OutputExistsError
from s2c_batch.pipeline.synth.pair import CLASS_CODES, SyntheticPair, render_window, write_synthetic_pair


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


@pytest.fixture(scope="module")
def pair_1024(tmp_path_factory: pytest.TempPathFactory) -> SyntheticPair:
    return write_synthetic_pair(tmp_path_factory.mktemp("synth") / "scene", size=1024, seed=7, block=256)


def test_write_synthetic_pair__files_shape_dtype_georef(pair_1024: SyntheticPair) -> None:
    assert isinstance(pair_1024, SyntheticPair)
    assert [p.name for p in (pair_1024.t1, pair_1024.t2, pair_1024.truth, pair_1024.truth_class)] == [
        "t1.tif", "t2.tif", "truth.tif", "truth_class.tif"]
    expected = Affine(0.5, 0.0, 440000.0, 0.0, -0.5, 5420000.0)
    assert pair_1024.transform == expected
    for path, count in ((pair_1024.t1, 3), (pair_1024.t2, 3), (pair_1024.truth, 1), (pair_1024.truth_class, 1)):
        with rasterio.open(path) as ds:
            assert (ds.count, ds.height, ds.width) == (count, 1024, 1024)
            assert ds.dtypes == ("uint8",) * count
            assert ds.crs.to_epsg() == 32631
            assert ds.transform == expected
            assert ds.profile["tiled"] and ds.block_shapes[0] == (256, 256)
            assert ds.compression.name.lower() == "deflate"
            assert ds.tags()["S2C_SYNTH_SEED"] == "7"
    assert not list(pair_1024.t1.parent.glob(".*partial"))


def test_write_synthetic_pair__class_codes_in_tags(pair_1024: SyntheticPair) -> None:
    with rasterio.open(pair_1024.truth_class) as ds:
        tags = ds.tags()
    assert {int(k): v for k, v in json.loads(tags["CLASS_CODES"]).items()} == CLASS_CODES
    assert tags["CLASS_1"] == "building_new" and tags["CLASS_5"] == "vegetation_cleared"


def test_write_synthetic_pair__truth_consistent_with_pixels(pair_1024: SyntheticPair) -> None:
    t1 = _read(pair_1024.t1).astype(np.float32)
    t2 = _read(pair_1024.t2).astype(np.float32)
    truth = _read(pair_1024.truth)[0]
    cls = _read(pair_1024.truth_class)[0]
    np.testing.assert_array_equal(truth, (cls > 0).astype(np.uint8))
    assert set(np.unique(cls).tolist()) <= set(CLASS_CODES)
    assert len(set(np.unique(cls).tolist()) - {0}) >= 3
    assert 0.02 <= truth.mean() <= 0.20
    diff = np.sqrt(((t1 - t2) ** 2).sum(axis=0))
    assert diff[truth == 1].mean() > 3 * diff[truth == 0].mean()
    assert diff[truth == 0].mean() > 5  # the dates differ a little everywhere: not trivial
    # a per-pixel colour-difference detector sees the planted changes
    pred = diff > 45
    tp, fp, fn = np.sum(pred & (truth == 1)), np.sum(pred & (truth == 0)), np.sum(~pred & (truth == 1))
    assert 2 * tp / (2 * tp + fp + fn) > 0.8


def test_write_synthetic_pair__same_seed_byte_identical(tmp_path: Path) -> None:
    a = write_synthetic_pair(tmp_path / "a", size=320, seed=3, block=256)
    b = write_synthetic_pair(tmp_path / "b", size=320, seed=3, block=256)
    for pa, pb in zip((a.t1, a.t2, a.truth, a.truth_class), (b.t1, b.t2, b.truth, b.truth_class), strict=True):
        assert pa.read_bytes() == pb.read_bytes()


def test_write_synthetic_pair__different_seed_differs(tmp_path: Path) -> None:
    a = write_synthetic_pair(tmp_path / "a", size=320, seed=3)
    b = write_synthetic_pair(tmp_path / "b", size=320, seed=4)
    assert not np.array_equal(_read(a.t1), _read(b.t1))
    assert not np.array_equal(_read(a.truth_class), _read(b.truth_class))


def test_write_synthetic_pair__block_size_invariant(tmp_path: Path) -> None:
    a = write_synthetic_pair(tmp_path / "a", size=700, seed=11, block=256)
    b = write_synthetic_pair(tmp_path / "b", size=700, seed=11, block=768)
    for pa, pb in zip((a.t1, a.t2, a.truth_class), (b.t1, b.t2, b.truth_class), strict=True):
        np.testing.assert_array_equal(_read(pa), _read(pb))


@pytest.mark.parametrize("window", [(0, 0, 256, 256), (100, 37, 200, 333), (250, 250, 20, 20), (600, 500, 400, 400)])
def test_render_window__equals_window_of_whole_scene(tmp_path: Path, window: tuple[int, int, int, int]) -> None:
    pair = write_synthetic_pair(tmp_path, size=700, seed=5, block=1024)
    row, col, h, w = window
    block = render_window(seed=5, size=700, row_off=row, col_off=col, height=h, width=w)
    sl = (slice(row, min(700, row + h)), slice(col, min(700, col + w)))
    np.testing.assert_array_equal(block.t1, _read(pair.t1)[(slice(None), *sl)])
    np.testing.assert_array_equal(block.t2, _read(pair.t2)[(slice(None), *sl)])
    np.testing.assert_array_equal(block.truth_class, _read(pair.truth_class)[0][sl])
    np.testing.assert_array_equal(block.truth, _read(pair.truth)[0][sl])


def test_render_window__outside_scene_rejected() -> None:
    with pytest.raises(ValueError, match="outside the 100x100 scene"):
        render_window(seed=0, size=100, row_off=100, col_off=0, height=10, width=10)


def test_write_synthetic_pair__bounded_memory(tmp_path: Path) -> None:
    write_synthetic_pair(tmp_path / "warm", size=256, seed=1, block=256)  # imports outside the measurement
    tracemalloc.start()
    try:
        write_synthetic_pair(tmp_path / "big", size=2048, seed=1, block=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    whole_t1 = 3 * 2048 * 2048  # one whole-scene uint8 RGB image
    assert peak < whole_t1 / 1.5


def test_write_synthetic_pair__other_crs(tmp_path: Path) -> None:
    utm = write_synthetic_pair(tmp_path / "utm", size=64, seed=0, crs="EPSG:32633")
    laea = write_synthetic_pair(tmp_path / "laea", size=64, seed=0, crs="EPSG:3035")
    with rasterio.open(utm.t1) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == Affine(0.5, 0, 440000.0, 0, -0.5, 5420000.0)
    with rasterio.open(laea.t1) as ds:
        assert ds.crs.to_epsg() == 3035 and ds.res == (0.5, 0.5)
        assert 2_000_000 < ds.transform.c < 6_000_000 and 1_000_000 < ds.transform.f < 6_000_000


def test_write_synthetic_pair__refuses_existing_without_overwrite(tmp_path: Path) -> None:
    write_synthetic_pair(tmp_path, size=64, seed=0)
    with pytest.raises(OutputExistsError, match=r"t1\.tif' already exists; pass --overwrite"):
        write_synthetic_pair(tmp_path, size=64, seed=1)
    pair = write_synthetic_pair(tmp_path, size=64, seed=1, overwrite=True)
    assert pair.seed == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block": 300}, "block must be a positive multiple of 256"),
        ({"size": 0}, "size must be a positive"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"crs": "EPSG:4326"}, "is not projected"),
        ({"crs": "not-a-crs"}, "'not-a-crs' is not a CRS"),
    ],
)
def test_write_synthetic_pair__rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"size": 64, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        write_synthetic_pair(tmp_path, **args)


def test_synth_cli__writes_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "out"), "--size", "128", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "truth_class.tif").exists()
    assert str(tmp_path / "out" / "t1.tif") in result.output
    with rasterio.open(tmp_path / "out" / "t2.tif") as ds:
        assert ds.crs.to_epsg() == 32631 and ds.shape == (128, 128)


def test_synth_cli__existing_exit_4(tmp_path: Path) -> None:
    args = ["synth", str(tmp_path), "--size", "64", "--seed", "2"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, OutputExistsError)
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 4
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0


def test_synth_cli__bad_block_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["synth", str(tmp_path), "--size", "64", "--seed", "2", "--block", "300"])
    assert result.exit_code == 2
    assert "multiple of 256" in result.output


def test_synth_cli__geographic_crs_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path), "--size", "64", "--seed", "2", "--crs", "EPSG:4326"])
    assert exc.value.code == 2


def test_synth_cli__missing_size_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["synth", str(tmp_path), "--seed", "2"])
    assert result.exit_code == 2
    assert "--size" in result.output
