"""Tests of s2c_batch.pipeline.learn.dataset, s2c_batch.pipeline.learn.evaluate and ``s2c-batch eval``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2c_batch.kernels.prediction import Prediction
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import ConfigError, InputError
from s2c_batch.pipeline.learn.dataset import open_dataset, read_label
from s2c_batch.pipeline.learn.evaluate import (
    evaluate_dataset,
    format_eval_table,
    parse_semantic_classes,
)
from s2c_batch.pipeline.learn.presets import EVAL_PRESETS, eval_preset

from testutils import write_png

LEVIR_SAMPLES = "wgcban_ChangeFormer/samples_LEVIR"


def _dataset(root: Path, labels: dict[str, np.ndarray], *, classes: bool = False) -> Path:
    """A LEVIR-layout folder: t1 grey, t2 bright where the label is 1 (so the oracle below is exact)."""
    for name, label in labels.items():
        t1 = np.full((3, *label.shape), 100, np.uint8)
        t2 = t1.copy()
        t2[:, label == 1] = 250
        write_png(root / "A" / f"{name}.png", t1)
        write_png(root / "B" / f"{name}.png", t2)
        write_png(root / "label" / f"{name}.png", (label * 255).astype(np.uint8))
        if classes:
            write_png(root / "label1" / f"{name}.png", np.where(label == 1, 2, 0).astype(np.uint8))
            write_png(root / "label2" / f"{name}.png", np.where(label == 1, 3, 0).astype(np.uint8))
    return root


class _Oracle:
    """A predictor that calls a pixel changed where t2 is brighter than t1; classes 1 (t1) and 2 (t2)."""

    class_names = ("background", "grass", "building")
    target_classes = (2,)

    def __init__(self, *, classes: bool) -> None:
        self.with_classes = classes

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray) -> Prediction:
        prob = (tiles_t2.mean(axis=1) > tiles_t1.mean(axis=1) + 0.1).astype(np.float32)
        if not self.with_classes:
            return Prediction(prob=prob)
        c1 = np.where(prob > 0, 1, 0).astype(np.uint8)
        c2 = np.where(prob > 0, 2, 0).astype(np.uint8)
        return Prediction(prob=prob, class_t1=c1, class_t2=c2)


def _label(seed: int, shape: tuple[int, int] = (16, 16)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < 0.3).astype(np.uint8)


def test_open_dataset__pairs_sorted_by_name(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", {"b": _label(0), "a": _label(1)})
    data = open_dataset(root)
    assert [p.name for p in data.pairs] == ["a", "b"]
    assert data.layout == "levir" and not data.semantic


@pytest.mark.parametrize(
    ("remove", "match"),
    [("B/a.png", r"in A/ have no same-named file in B/ \(a\)"),
     ("label/b.png", r"in A/ have no same-named file in label/ \(b\)"),
     ("label", r"has no label/ folder")],
)
def test_open_dataset__mismatched_names(tmp_path: Path, remove: str, match: str) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0), "b": _label(1)})
    target = root / remove
    if target.is_dir():
        for f in target.iterdir():
            f.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(InputError, match=match):
        open_dataset(root)


def test_open_dataset__missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dataset folder .*nope.* does not exist; give a folder with A/"):
        open_dataset(tmp_path / "nope")


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0, 255], [0, 1]), ([0, 1], [0, 1]), ([0, 1, 255], [0, 1, 255]), ([0, 0], [0, 0])],
)
def test_read_label__conventions(tmp_path: Path, values: list[int], expected: list[int]) -> None:
    write_png(tmp_path / "l.png", np.array([values], np.uint8))
    assert read_label(tmp_path / "l.png").tolist() == [expected]


def test_read_label__unknown_values(tmp_path: Path) -> None:
    write_png(tmp_path / "l.png", np.array([[0, 7, 255]], np.uint8))
    with pytest.raises(InputError, match=r"holds values \[7\]; change labels are 0/255"):
        read_label(tmp_path / "l.png")


def test_evaluate_dataset__oracle_is_perfect_and_sums_over_pairs(tmp_path: Path) -> None:
    labels = {"a": _label(0), "b": _label(1), "c": _label(2, (24, 20))}
    root = _dataset(tmp_path / "ds", labels)
    cfg = load_config("cva")
    result = evaluate_dataset(root, cfg, predictor=_Oracle(classes=False))
    m = result.metrics
    changed = sum(int(v.sum()) for v in labels.values())
    assert (m.tp, m.fp, m.fn) == (changed, 0, 0)
    assert m.n == 16 * 16 * 2 + 24 * 20
    assert m.f1 == 1.0 and m.iou == 1.0 and m.kappa == 1.0
    assert result.pairs == 3
    table = format_eval_table(result)
    assert "F1^c" in table and "IoU^c" in table and "Kappa" in table and "1.0000" in table


def test_evaluate_dataset__semantic_classes(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0), "b": _label(1)}, classes=True)
    cfg = load_config("tiny")  # an identifier is configured; the oracle stands in for it
    result = evaluate_dataset(root, cfg, predictor=_Oracle(classes=True),
                              semantic_classes={2: ["grass"], 3: ["building"]})
    assert result.semantic is not None
    assert result.semantic.mf1 == 1.0 and result.semantic.miou == 1.0
    out = result.to_dict()
    assert out["semantic"]["classes"]["3"]["names"] == ["building"]


def test_evaluate_dataset__targets_need_an_identifier(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0)})
    with pytest.raises(ConfigError, match=r"--targets and --class need an identifier"):
        evaluate_dataset(root, load_config("cva"), targets=["building"])


def test_evaluate_dataset__semantic_needs_class_maps(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0)})
    with pytest.raises(InputError, match=r"no per-date class maps .* add label1/ and label2/"):
        evaluate_dataset(root, load_config("tiny"), semantic_classes={1: ["building"]}, predictor=_Oracle(classes=True))


def test_parse_semantic_classes__forms() -> None:
    assert parse_semantic_classes(["5=building", "1=grass+cropland"]) == {5: ("building",), 1: ("grass", "cropland")}
    with pytest.raises(ConfigError, match=r"--class expects ID=NAME"):
        parse_semantic_classes(["building"])


def test_eval_cli__levir_samples_tiny_config(shared_data: Path, tmp_path: Path) -> None:
    """The tiny config (random weights) on the real LEVIR-CD samples: the table and the JSON."""
    dataset = shared_data / LEVIR_SAMPLES
    out = tmp_path / "metrics.json"
    res = CliRunner().invoke(cli, ["eval", str(dataset), "--config", "tiny", "--json", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    for name in ("F1^c", "IoU^c", "Kappa", "Precision", "Recall", "OA"):
        assert name in res.output
    assert "(11 pairs)" in res.output
    data = json.loads(out.read_text())
    assert data["pairs"] == 11 and data["n"] == 11 * 256 * 256
    assert data["model"]["identifier"] == "segearth_ov3"


def test_eval_cli__missing_dataset_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path / "missing"), "--config", "cva", "--no-progress"])
    assert exc.value.code == 3
    assert "does not exist" in capsys.readouterr().err


def test_eval_cli__missing_checkpoint_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0)})
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(root), "--set", "model.identifier=none", "--set",
              f"model.cach_checkpoint={tmp_path / 'none.safetensors'}", "--set",
              f"model.backbone_checkpoint={tmp_path / 'none.pth'}", "--no-progress"])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EVAL_PRESETS))
def test_eval_preset__names_are_classes_of_its_vocabulary(name: str) -> None:
    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary

    preset = eval_preset(name)
    vocab = load_vocabulary(preset.vocab)
    for names in preset.semantic_classes.values():
        assert set(names) <= set(vocab.class_names)
    # Every scored class is a target of the vocabulary file (the binary metric of the preset).
    scored = {vocab.class_names.index(n) for names in preset.semantic_classes.values() for n in names}
    assert scored == set(vocab.targets)


def test_eval_preset__the_authors_class_ids() -> None:
    """dataset/ovcd.py's SECOND_CLASS_MAPPING / SCSCD_CLASS_MAPPING with test_cach_ovcd.py's target
    indices into the prompt lists (SECOND: Grass [2, 7], Ground [1], Tree [5], Water [6], Building [8],
    Playground [3]; SC-SCD: [0] ... [6])."""
    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary

    def indices(name: str) -> dict[int, list[int]]:
        preset, vocab = eval_preset(name), load_vocabulary(eval_preset(name).vocab)
        return {c: [vocab.class_names.index(n) for n in names] for c, names in preset.semantic_classes.items()}

    assert indices("second") == {1: [2, 7], 2: [1], 3: [5], 4: [6], 5: [8], 6: [3]}
    assert indices("sc_scd") == {c: [c] for c in range(7)}
    with pytest.raises(ConfigError, match=r"--preset 'levir' is unknown; choose one of \['sc_scd', 'second'\]"):
        eval_preset("levir")


def test_eval_cli__preset_second_on_the_tiny_model(tmp_path: Path) -> None:
    """``--preset second`` on a SECOND-layout folder: the vocabulary, the six classes and their means."""
    rng = np.random.default_rng(0)
    root = tmp_path / "SECOND"
    for name in ("00001", "00002"):
        changed = np.zeros((48, 48), np.uint8)
        changed[10:30, 5:40] = 1
        write_png(root / "T1" / f"{name}.png", rng.integers(0, 256, (3, 48, 48), dtype=np.uint8))
        write_png(root / "T2" / f"{name}.png", rng.integers(0, 256, (3, 48, 48), dtype=np.uint8))
        write_png(root / "GT_CD" / f"{name}.png", changed * 255)
        write_png(root / "GT_T1" / f"{name}.png", changed * rng.integers(1, 7, (48, 48), dtype=np.uint8))
        write_png(root / "GT_T2" / f"{name}.png", changed * rng.integers(1, 7, (48, 48), dtype=np.uint8))
    res = CliRunner().invoke(cli, ["eval", str(root), "--config", "tiny", "--preset", "second", "--json", "-",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["model"]["preset"] == "second" and data["model"]["vocab"] == "second"
    assert data["model"]["targets"] == ["bareland", "grass", "sports field", "tree", "water", "cropland", "building"]
    classes = data["semantic"]["classes"]
    assert {c: v["names"] for c, v in classes.items()} == {
        "1": ["grass", "cropland"], "2": ["bareland"], "3": ["tree"], "4": ["water"], "5": ["building"],
        "6": ["sports field"],
    }
    assert data["semantic"]["miou"] == pytest.approx(np.mean([v["iou"] for v in classes.values()]))


def test_eval_cli__preset_and_class_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _dataset(tmp_path / "ds", {"a": _label(0)}, classes=True)
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(root), "--config", "tiny", "--preset", "sc_scd", "--class", "2=building", "--no-progress"])
    assert exc.value.code == 2
    assert "--preset sc_scd and --class both give the semantic classes" in capsys.readouterr().err
