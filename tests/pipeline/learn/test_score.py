"""Tests of s2c_batch.pipeline.learn.score and the ``s2c-batch score`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from s2c_batch.kernels.learn.metrics import confusion_matrix
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.learn.score import ScoreResult, format_table, score_rasters

# counted by hand, row by row: row 0 TN x4; row 1 TN, FP, 2 ignored; row 2 TP, TP, FN, TN;
# row 3 2 ignored, TP, FN -> TN=6 FP=1 FN=2 TP=3, 4 ignored
PRED = np.array([[0, 0, 0, 0], [0, 1, 0, 255], [1, 1, 0, 0], [255, 1, 1, 0]], np.uint8)
TRUTH = np.array([[0, 0, 0, 0], [0, 0, 255, 1], [1, 1, 1, 0], [0, 255, 1, 1]], np.uint8)


def _write(path: Path, array: np.ndarray, *, tiled: bool = False, block: int = 16) -> Path:
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1, dtype=array.dtype,
                   crs="EPSG:32631", transform=Affine(0.5, 0, 440000, 0, -0.5, 5420000))
    if tiled:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array, 1)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "pred.tif", PRED), _write(tmp_path / "truth.tif", TRUTH)


def test_score_rasters__hand_computed(pair: tuple[Path, Path]) -> None:
    res = score_rasters(*pair)
    assert isinstance(res, ScoreResult)
    m = res.metrics
    assert (m.tn, m.fp, m.fn, m.tp) == (6, 1, 2, 3)
    assert res.ignored == 4
    assert res.truth_values == "01"
    assert m.f1 == pytest.approx(6 / 9)
    assert m.iou == pytest.approx(3 / 6)
    assert m.precision == pytest.approx(3 / 4) and m.recall == pytest.approx(3 / 5)
    assert m.oa == pytest.approx(9 / 12)
    pe = ((3 + 1) * (3 + 2) + (6 + 2) * (1 + 6)) / 144  # 76 / 144
    assert m.kappa == pytest.approx((9 / 12 - 76 / 144) / (1 - 76 / 144))
    assert m.kappa == pytest.approx((9 / 12 - pe) / (1 - pe))


@pytest.mark.parametrize("tiled", [True, False])
def test_score_rasters__streaming_equals_whole(tmp_path: Path, tiled: bool) -> None:
    rng = np.random.default_rng(1)
    pred = rng.choice(np.array([0, 1, 255], np.uint8), size=(70, 53), p=[0.6, 0.3, 0.1])
    truth = rng.choice(np.array([0, 1], np.uint8), size=(70, 53))
    pp = _write(tmp_path / "p.tif", pred, tiled=tiled)
    tp = _write(tmp_path / "t.tif", truth, tiled=tiled)
    res = score_rasters(pp, tp, window_pixels=300)  # many small windows
    (tn, fp), (fn, tp_) = confusion_matrix(truth, pred).tolist()
    assert (res.metrics.tn, res.metrics.fp, res.metrics.fn, res.metrics.tp) == (tn, fp, fn, tp_)
    assert res.ignored == int(np.sum(pred == 255))


@pytest.mark.parametrize(
    ("truth", "expected", "counts"),
    [
        (TRUTH, "01", (3, 1, 2, 6, 4)),
        # 0/255 has no ignore value: the two truth-255 pixels become unchanged (pred 0 -> TN, pred 1 -> FP)
        (np.where(TRUTH == 1, 255, 0).astype(np.uint8), "0255", (3, 2, 2, 7, 2)),
        (np.where(TRUTH == 255, 0, TRUTH + 1).astype(np.uint8), "12", (3, 1, 2, 6, 4)),
    ],
)
def test_score_rasters__auto_detects_truth_convention(
    tmp_path: Path, truth: np.ndarray, expected: str, counts: tuple[int, ...]
) -> None:
    res = score_rasters(_write(tmp_path / "p.tif", PRED), _write(tmp_path / "t.tif", truth))
    assert res.truth_values == expected
    assert (res.metrics.tp, res.metrics.fp, res.metrics.fn, res.metrics.tn, res.ignored) == counts


def test_score_rasters__explicit_01_ignores_255(tmp_path: Path) -> None:
    truth = np.where(TRUTH == 1, 255, 0).astype(np.uint8)  # auto would read 255 as change
    res = score_rasters(_write(tmp_path / "p.tif", PRED), _write(tmp_path / "t.tif", truth), truth_values="01")
    assert res.metrics.tp == 0 and res.metrics.fn == 0
    assert res.ignored == 7  # 2 pred nodata + 5 other truth-255 pixels


def test_score_rasters__unknown_truth_values(tmp_path: Path) -> None:
    truth = np.array([[0, 1], [2, 3]], np.uint8)
    pred = np.zeros((2, 2), np.uint8)
    with pytest.raises(InputError, match=r"t\.tif' holds values \[0, 1, 2, 3\], which match no known convention"):
        score_rasters(_write(tmp_path / "p.tif", pred), _write(tmp_path / "t.tif", truth))


def test_score_rasters__truth_values_outside_convention(tmp_path: Path) -> None:
    truth = np.array([[0, 1], [1, 0]], np.uint8)
    with pytest.raises(InputError, match=r"values \[1\] that the '0255' convention does not define"):
        score_rasters(_write(tmp_path / "p.tif", np.zeros((2, 2), np.uint8)), _write(tmp_path / "t.tif", truth),
                      truth_values="0255")


def test_score_rasters__bad_prediction_values(tmp_path: Path) -> None:
    pred = np.array([[0, 2], [1, 0]], np.uint8)
    with pytest.raises(InputError, match=r"PRED file '.*p\.tif' holds values \[2\]"):
        score_rasters(_write(tmp_path / "p.tif", pred), _write(tmp_path / "t.tif", np.zeros((2, 2), np.uint8)))


def test_score_rasters__float_prediction_rejected(tmp_path: Path) -> None:
    pred = np.zeros((2, 2), np.float32)
    with pytest.raises(InputError, match="holds float32 values; it must be an integer change mask"):
        score_rasters(_write(tmp_path / "p.tif", pred), _write(tmp_path / "t.tif", np.zeros((2, 2), np.uint8)))


def test_score_rasters__shape_mismatch_names_both(tmp_path: Path) -> None:
    p = _write(tmp_path / "p.tif", np.zeros((4, 5), np.uint8))
    t = _write(tmp_path / "t.tif", np.zeros((4, 6), np.uint8))
    with pytest.raises(InputError, match=r"p\.tif' has shape 4x5 .* TRUTH file '.*t\.tif' has 4x6"):
        score_rasters(p, t)


def test_score_rasters__missing_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "p.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError, match=r"TRUTH file '.*missing\.tif' does not exist"):
        score_rasters(p, tmp_path / "missing.tif")


def test_score_rasters__unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(InputError, match=r"PRED file '.*bad\.tif' is not a readable raster"):
        score_rasters(bad, bad)


def test_score_rasters__no_change_anywhere_is_nan(tmp_path: Path) -> None:
    z = np.zeros((3, 3), np.uint8)
    res = score_rasters(_write(tmp_path / "p.tif", z), _write(tmp_path / "t.tif", z))
    assert math.isnan(res.metrics.f1) and math.isnan(res.metrics.iou) and res.metrics.oa == 1.0
    assert res.to_dict()["f1"] is None
    assert "nan" in format_table(res)


def test_score_cli__table(pair: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(cli, ["score", str(pair[0]), str(pair[1])])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "F1^c         0.6667" in lines
    assert "IoU^c        0.5000" in lines
    assert any(line.startswith("Kappa") for line in lines)
    assert "TP 3, FP 1, FN 2, TN 6" in result.output


def test_score_cli__json(pair: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(cli, ["score", str(pair[0]), str(pair[1]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["f1"] == pytest.approx(2 / 3) and data["iou"] == pytest.approx(0.5)
    assert (data["tp"], data["fp"], data["fn"], data["tn"], data["ignored"]) == (3, 1, 2, 6, 4)
    assert data["truth_values"] == "01" and data["truth"] == str(pair[1])


def test_score_cli__truth_values_option(tmp_path: Path) -> None:
    p = _write(tmp_path / "p.tif", PRED)
    t = _write(tmp_path / "t.tif", np.where(TRUTH == 255, 0, TRUTH + 1).astype(np.uint8))
    result = CliRunner().invoke(cli, ["score", str(p), str(t), "--truth-values", "12", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tp"] == 3
    assert CliRunner().invoke(cli, ["score", str(p), str(t), "--truth-values", "xy"]).exit_code == 2


def test_score_cli__shape_mismatch_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _write(tmp_path / "p.tif", np.zeros((4, 5), np.uint8))
    t = _write(tmp_path / "t.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(SystemExit) as exc:
        main(["score", str(p), str(t)])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert "p.tif" in err and "t.tif" in err and "4x5" in err and "5x5" in err


def test_score_cli__missing_file_exit_3(tmp_path: Path) -> None:
    t = _write(tmp_path / "t.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(SystemExit) as exc:
        main(["score", str(tmp_path / "nope.tif"), str(t)])
    assert exc.value.code == 3
    assert isinstance(CliRunner().invoke(cli, ["score", str(tmp_path / "nope.tif"), str(t)]).exception, InputError)


def test_score_cli__synthetic_truth_scores_itself(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["synth", str(tmp_path), "--size", "256", "--seed", "9"]).exit_code == 0
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "truth.tif"), str(tmp_path / "truth.tif"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["f1"] == 1.0 and data["kappa"] == 1.0 and data["n"] == 256 * 256
