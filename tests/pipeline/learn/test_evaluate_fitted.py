"""``s2c-batch eval`` with the comparators fitted to a scene: per image pair against whole-image numpy oracles,
once over the dataset, Otsu per pair or per dataset, and the mask-level comparators with their options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from s2c_batch.kernels.comparators.registry import create_comparator
from s2c_batch.kernels.learn.metrics import ConfusionAccumulator
from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.config import comparator_options, load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.learn.dataset import open_dataset
from s2c_batch.pipeline.learn.evaluate import evaluate_dataset, levels
from s2c_batch.pipeline.learn.predictions import bind, dataset_comparator, predict_fitted_pairs, predict_pairs

import comparator_oracles as oracles
from testutils import write_png

SHAPES = {"a": (40, 48), "b": (44, 40), "c": (40, 48)}
LEVIR_SAMPLES = "wgcban_ChangeFormer/samples_LEVIR"


def _images(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 RGB dates with a gain between them and planted changes; the label marks the changes."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([110 + 50 * np.sin(yy / (4 + k) + xx / (7 + 2 * k)) for k in range(3)])
    a = base + rng.normal(0, 6, base.shape)
    b = 0.85 * base + 20 + rng.normal(0, 6, base.shape)
    label = np.zeros(shape, np.uint8)
    for _ in range(3):
        r, c = rng.integers(0, h - 10), rng.integers(0, w - 10)
        b[:, r : r + 9, c : c + 8] = rng.uniform(0, 255, (3, 1, 1))
        label[r : r + 9, c : c + 8] = 1
    return np.clip(a, 0, 255).astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8), label


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    for k, (name, shape) in enumerate(SHAPES.items()):
        a, b, label = _images(shape, k)
        write_png(root / "A" / f"{name}.png", a)
        write_png(root / "B" / f"{name}.png", b)
        write_png(root / "label" / f"{name}.png", label * 255)
    return root


def _unit_pairs(root: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for name in sorted(SHAPES):
        a, b, label = _images(SHAPES[name], sorted(SHAPES).index(name))
        out.append((a.astype(np.float32) / np.float32(255), b.astype(np.float32) / np.float32(255),
                    np.ones(label.shape, bool), label))
    return out


PER_PAIR = {
    "cva": (["model.comparator=cva", "model.standardize=scene", "model.threshold=otsu"],
            lambda a, b, v: oracles.products(oracles.cva(a, b, v, standardized=True), v, "otsu")[0]),
    "pca_kmeans": (["model.comparator=pca_kmeans"],
                   lambda a, b, v: oracles.products(oracles.pca_kmeans(a, b, v)[0], v, 0.5)[0]),
    "irmad": (["model.comparator=irmad", "model.threshold=otsu"],
              lambda a, b, v: oracles.products(oracles.linear(oracles.irmad_magnitude(a, b, v), v, 99.9), v,
                                               "otsu")[0]),
}


@pytest.mark.parametrize("name", PER_PAIR)
def test_eval__fitted_per_pair_equals_the_whole_image_oracle(name: str, dataset: Path) -> None:
    """Each pair is a scene of its own (the paper's protocol): its encoded probability and mask are the
    whole-image numpy oracle's, and the confusion matrix their sum."""
    sets, oracle = PER_PAIR[name]
    cfg = load_config("cva", sets)
    data = open_dataset(dataset)
    want = [oracle(a, b, v) for a, b, v, _ in _unit_pairs(dataset)]
    got = list(predict_fitted_pairs(build_predictor(cfg.model), data.pairs, cfg))
    assert [g.pair.name for g in got] == sorted(SHAPES)
    acc = ConfusionAccumulator()
    for g, w, (_, _, _, label) in zip(got, want, _unit_pairs(dataset), strict=True):
        np.testing.assert_array_equal(levels(g.prob), w["change_prob"])
        acc.update(label, w["change_mask"])
    result = evaluate_dataset(dataset, cfg)
    m, e = result.metrics, acc.metrics()
    assert (m.tp, m.fp, m.fn, m.tn) == (e.tp, e.fp, e.fn, e.tn)
    assert result.model["fit"] == "pair" and "fitted" not in result.model
    if cfg.model.otsu:
        assert result.model["threshold"]["method"] == "otsu" and set(result.model["threshold"]["levels"]) == set(SHAPES)


def test_eval__cva_fitted_once_to_the_dataset_equals_the_pooled_oracle(dataset: Path) -> None:
    """``--fit dataset``: one standardisation and ``s_ref`` from every pixel of every pair, one Otsu level
    over the dataset's histogram."""
    cfg = load_config("cva", ["model.standardize=scene", "model.threshold=otsu"])
    pairs = _unit_pairs(dataset)
    stats = []
    for k in (0, 1):
        values = np.concatenate([p[k].reshape(3, -1) for p in pairs], axis=1).astype(np.float64)
        stats.append((values.mean(axis=1), values.std(axis=1)))
    mags = []
    for a, b, _, _ in pairs:
        za, zb = ((x - m[:, None, None].astype(np.float32)) / s[:, None, None].astype(np.float32)
                  for x, (m, s) in zip((a, b), stats, strict=True))
        mags.append(oracles.magnitude(za, zb))
    ref = float(np.percentile(np.concatenate([s.ravel() for s in mags]), 99.9))
    enc = [oracles.products(np.minimum(np.float32(1), s / np.float32(ref)), v, 0.5)[0]["change_prob"]
           for s, (_, _, v, _) in zip(mags, pairs, strict=True)]
    level = oracles.otsu_level(np.concatenate([e.ravel() for e in enc])[None])
    acc = ConfusionAccumulator()
    for e, (_, _, _, label) in zip(enc, pairs, strict=True):
        acc.update(label, (e >= level).astype(np.uint8))
    result = evaluate_dataset(dataset, cfg, fit="dataset")
    m, w = result.metrics, acc.metrics()
    assert (m.tp, m.fp, m.fn, m.tn) == (w.tp, w.fp, w.fn, w.tn)
    assert result.model["threshold"]["level"] == level and result.model["threshold"]["fit"] == "dataset"
    assert result.model["fitted"]["comparator"] == "cva" and result.model["fitted"]["reference"] == pytest.approx(ref)
    per_pair = evaluate_dataset(dataset, cfg)
    assert (per_pair.metrics.tp, per_pair.metrics.fp) != (m.tp, m.fp)


def test_eval__pca_kmeans_fitted_to_the_dataset_differs_from_each_pair(dataset: Path) -> None:
    cfg = load_config("cva", ["model.comparator=pca_kmeans", "pca_kmeans.n_init=3"])
    whole, each = evaluate_dataset(dataset, cfg, fit="dataset"), evaluate_dataset(dataset, cfg)
    assert whole.model["fitted"]["comparator"] == "pca_kmeans" and "fitted" not in each.model
    assert whole.metrics.n == each.metrics.n == sum(h * w for h, w in SHAPES.values())
    assert (whole.metrics.tp, whole.metrics.fp) != (each.metrics.tp, each.metrics.fp)


def test_eval__a_pair_that_cannot_be_fitted_is_named(tmp_path: Path) -> None:
    grey = np.full((3, 20, 20), 90, np.uint8)
    for folder, data in (("A", grey), ("B", grey), ("label", np.zeros((20, 20), np.uint8))):
        write_png(tmp_path / folder / "flat.png", data)
    with pytest.raises(InputError, match=r"pair 'flat' cannot be fitted \(cva\): model\.standardize=scene: t1 band "
                                         r"#1, .* is constant"):
        evaluate_dataset(tmp_path, load_config("cva", ["model.standardize=scene"]))


def test_eval__mask_level_comparator_takes_its_options_as_in_run() -> None:
    """As ``run`` does, the mask-level method is the config's (its sections), not the defaults."""
    cfg = load_config("tiny", ["model.comparator=anychange", "anychange.theta=120"])
    method = create_comparator("anychange", comparator_options(cfg))
    bound: Any = bind(build_predictor(cfg.model), method, fitted=False)
    assert bound.method == method and bound.method.anychange.theta == 120


def test_eval_cli__ucd_scm_alone_thresholds_each_pair_by_otsu(dataset: Path, tmp_path: Path) -> None:
    """``ucd_scm`` needs no threshold setting in eval either; its Otsu leaves level 0 out, per pair."""
    out = tmp_path / "m.json"
    res = CliRunner().invoke(cli, ["eval", str(dataset), "--config", "tiny", "--set", "model.comparator=ucd_scm",
                                   "--set", "amg.points_per_side=4", "--json", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["model"]["threshold"]["method"] == "otsu" and set(doc["model"]["threshold"]["levels"]) == set(SHAPES)
    assert all(k >= 1 for k in doc["model"]["threshold"]["levels"].values())
    assert "otsu per pair" in res.output


def test_eval_cli__levir_samples_fitted_comparators(shared_data: Path, tmp_path: Path) -> None:
    """The real LEVIR-CD samples: IR-MAD fitted to each pair (some collapse), and to the dataset."""
    dataset = shared_data / LEVIR_SAMPLES
    for fit in ("pair", "dataset"):
        out = tmp_path / f"{fit}.json"
        res = CliRunner().invoke(cli, ["eval", str(dataset), "--config", "cva", "--set", "model.comparator=irmad",
                                       "--set", "model.threshold=otsu", "--set", "irmad.max_iterations=8",
                                       "--fit", fit, "--json", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        doc = json.loads(out.read_text())
        assert doc["pairs"] == 11 and doc["n"] == 11 * 256 * 256 and doc["model"]["fit"] == fit
        assert 0.0 < doc["f1"] < 1.0


def test_eval__dcva_fitted_to_the_first_pair_alone_equals_its_own_fit(dataset: Path) -> None:
    """DCVA (tiny random backbone): fitted to each pair, or to ``dcva.fit_tiles`` pairs spread over the
    dataset; with one fit tile that is the first pair, whose prediction is then the same both ways."""
    cfg = load_config("tiny", ["model.comparator=dcva", "model.identifier=none", "dcva.fit_tiles=1"])
    predictor = build_predictor(cfg.model)
    data = open_dataset(dataset)
    each = list(predict_fitted_pairs(predictor, data.pairs, cfg))
    fitted = dataset_comparator(predictor, data.pairs, cfg, fit="dataset")
    assert fitted is not None and fitted.to_json()["comparator"] == "dcva"
    first = next(predict_pairs(bind(predictor, fitted, fitted=True), data.pairs[:1]))
    np.testing.assert_array_equal(first.prob, each[0].prob)
    result = evaluate_dataset(dataset, cfg, predictor=predictor, fit="dataset")
    assert result.model["fitted"] == fitted.to_json() and result.metrics.n == sum(h * w for h, w in SHAPES.values())


@pytest.mark.parametrize(("sets", "threshold", "figures"), [
    ([], 0.5, (17.62, 9.66, 10.39)),
    (["model.standardize=scene", "model.threshold=otsu"], "otsu", (23.26, 13.16, 4.72)),
])
def test_eval__levir_samples_cva_equals_the_numpy_oracle_and_the_docs(
        shared_data: Path, sets: list[str], threshold: float | str, figures: tuple[float, float, float]) -> None:
    """The real LEVIR-CD samples, each pair fitted on its own: the confusion matrix is the whole-image numpy
    oracle's (images read by PIL, not the pipeline), and F1^c / IoU^c / Kappa are docs/comparators.md's."""
    from PIL import Image

    root = shared_data / LEVIR_SAMPLES
    acc = ConfusionAccumulator()
    for path in sorted((root / "A").iterdir()):
        a, b = (np.asarray(Image.open(root / d / path.name).convert("RGB"), np.float32).transpose(2, 0, 1)
                / np.float32(255) for d in ("A", "B"))
        valid = np.ones(a.shape[1:], bool)
        prob = oracles.cva(a, b, valid, standardized=True) if sets else \
            np.minimum(np.float32(1), oracles.magnitude(a, b) / np.float32(np.sqrt(3)))
        label = (np.asarray(Image.open(root / "label" / path.name).convert("L")) > 0).astype(np.uint8)
        acc.update(label, oracles.products(prob, valid, threshold)[0]["change_mask"])
    result = evaluate_dataset(root, load_config("cva", sets))
    m, want = result.metrics, acc.metrics()
    assert (m.tp, m.fp, m.fn, m.tn) == (want.tp, want.fp, want.fn, want.tn)
    assert tuple(round(100 * v, 2) for v in (m.f1, m.iou, m.kappa)) == figures
