"""``s2c-batch eval``: the paper's metrics of a comparator on a change-detection dataset.

As the authors' evaluation (``test_cach_ovcd.py``): every pair is fed whole to
the predictor (resized there to the backbone's input, the logits resized back
to the image), the change is ``p > model.threshold`` (their argmax for 0.5, a tie
being no change; :func:`~s2c_batch.kernels.raster.encode.is_change`) and,
with an identifier, only where t1 or t2 is a target class
(``change & (class_t1 in targets | class_t2 in targets)``); with
``model.identifier: none`` the change is category-agnostic. One binary
confusion matrix is summed over every pixel of every pair
(:mod:`s2c_batch.kernels.learn.metrics`) and F1^c, IoU^c, Kappa, precision, recall
and OA are computed once from it.

Every comparator runs (:mod:`s2c_batch.pipeline.learn.predictions`): those fitted to a
scene are fitted to each pair (``fit="pair"``, the paper's protocol) or once to the
dataset (``fit="dataset"``). With ``model.threshold: otsu`` the threshold is Otsu's level
of the encoded ``change_prob`` (``round(254 p)``, changed from the level up, as ``run``),
over each pair or over the whole dataset likewise (``ucd_scm``'s leaves level 0 out).

Semantic change (optional). When the dataset has per-date class maps
(``label1/``, ``label2/``; see :mod:`s2c_batch.pipeline.learn.dataset`) and
``semantic_classes`` maps dataset class ids to vocabulary class names (e.g.
SECOND: ``{5: ["building"], 3: ["tree"], 1: ["grass", "cropland"]}``), each
class ``c`` is scored as a binary task: truth ``changed & (gt_t1 == c | gt_t2 == c)``,
prediction ``change & (class_t1 in names(c) | class_t2 in names(c))``, and
mF1, mIoU, mOA, mKappa are the plain means over the classes. A ``preset``
(:mod:`s2c_batch.pipeline.learn.presets`: ``second``, ``sc_scd``) gives the
vocabulary and these classes as the authors score them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2c_batch.kernels.learn.metrics import BinaryMetrics, ConfusionAccumulator, SemanticAccumulator, SemanticMetrics
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.raster.encode import NODATA, encode_products, is_change, target_change
from s2c_batch.kernels.raster.otsu import level_histogram
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import ConfigError, InputError, OutputError
from s2c_batch.pipeline.learn.dataset import PairFiles, open_dataset, read_class_map
from s2c_batch.pipeline.learn.paper import format_paper
from s2c_batch.pipeline.learn.predictions import (
    FitScope,
    PairPrediction,
    bind,
    dataset_comparator,
    fits_each_pair,
    predict_fitted_pairs,
    predict_pairs,
)
from s2c_batch.pipeline.learn.presets import eval_preset
from s2c_batch.pipeline.learn.table import describe_threshold
from s2c_batch.pipeline.run.threshold import choose_threshold


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one dataset.

    Attributes:
        dataset: the dataset folder.
        pairs: number of pairs scored.
        metrics: binary change metrics (F1^c, IoU^c, Kappa, ...) of the summed confusion matrix.
        semantic: per-class metrics and their means, or None.
        class_names: dataset class id -> vocabulary names scored, for ``semantic``.
        model: what ran (comparator, identifier, targets, threshold; fit, standardize and the
            dataset's fitted parameters where they apply).
        seconds: wall time.
        paper: the paper's figures on the dataset (``eval --paper``), or None.
    """

    dataset: Path
    pairs: int
    metrics: BinaryMetrics
    semantic: SemanticMetrics | None = None
    class_names: dict[int, tuple[str, ...]] | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    paper: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` -> ``None``)."""
        out: dict[str, Any] = {"dataset": str(self.dataset), "pairs": self.pairs, "model": self.model,
                               **self.metrics.to_dict(), "seconds": round(self.seconds, 3)}
        if self.semantic is not None:
            sem = self.semantic
            out["semantic"] = {
                "mf1": _none(sem.mf1), "miou": _none(sem.miou), "moa": _none(sem.moa), "mkappa": _none(sem.mkappa),
                "classes": {
                    str(c): {"names": list((self.class_names or {}).get(c, ())), **m.to_dict()}
                    for c, m in sem.per_class.items()
                },
            }
        if self.paper is not None:
            out["paper"] = self.paper
        return out


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value


def parse_semantic_classes(items: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """Parse ``ID=NAME[+NAME...]`` items (``5=building``, ``1=grass+cropland``).

    Raises:
        ConfigError: an item is not of that form.
    """
    out: dict[int, tuple[str, ...]] = {}
    for item in items:
        key, _, names = item.partition("=")
        parts = tuple(n.strip() for n in names.split("+") if n.strip())
        if not key.strip().isdigit() or not parts:
            raise ConfigError(f"--class expects ID=NAME[+NAME...] (e.g. 5=building), got {item!r}")
        out[int(key)] = parts
    return out


def _class_lut(classes: Mapping[int, Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """uint8 ``[256]``: vocabulary index -> dataset class id (255 = none)."""
    lut = np.full(256, 255, np.uint8)
    index = {name: i for i, name in enumerate(vocabulary)}
    for cls, names in classes.items():
        for name in names:
            if name not in index:
                raise ConfigError(
                    f"--class {cls}={'+'.join(names)}: {name!r} is not a class of the vocabulary; "
                    f"classes are {list(vocabulary)}"
                )
            lut[index[name]] = cls
    return lut


class Scores:
    """The confusion matrices a dataset's pairs add up to: binary, and per semantic class.

    Args:
        target_classes: the predictor's target classes (the change counts where t1 or t2 is one).
        class_names: the predictor's vocabulary.
        semantic_classes: dataset class id -> vocabulary names, or ``None``.
    """

    def __init__(self, target_classes: Sequence[int], class_names: Sequence[str],
                 semantic_classes: Mapping[int, Sequence[str]] | None = None) -> None:
        """Start from empty matrices."""
        self.targets = tuple(target_classes)
        self.binary = ConfusionAccumulator()
        self.semantic = SemanticAccumulator(sorted(semantic_classes)) if semantic_classes else None
        self.lut = _class_lut(semantic_classes, class_names) if semantic_classes else None

    def add(self, out: PairPrediction, change: np.ndarray, ok: np.ndarray) -> None:
        """Count one pair.

        Args:
            out: the pair's prediction and label.
            change: bool ``[H, W]``, the comparator's change (before the target classes).
            ok: bool ``[H, W]``, where the prediction is known (elsewhere ignored).
        """
        c1, c2 = out.class_t1, out.class_t2
        mask = (change & target_change(c1, c2, self.targets)).astype(np.uint8)
        mask[~ok] = NODATA
        self.binary.update(out.label, mask)
        if self.semantic is not None and self.lut is not None and c1 is not None and c2 is not None:
            assert out.pair.class_t1 is not None and out.pair.class_t2 is not None  # checked by the caller
            self.semantic.update(out.label, read_class_map(out.pair.class_t1), read_class_map(out.pair.class_t2),
                                 change.astype(np.uint8), self.lut[c1], self.lut[c2])


def numeric_change(prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(prob > threshold, finite)``: the change at a numeric threshold and where ``prob`` is known."""
    ok = np.isfinite(prob)
    return is_change(np.clip(np.nan_to_num(prob, nan=0.0), 0.0, 1.0), threshold) & ok, ok


def levels(prob: np.ndarray) -> np.ndarray:
    """The encoded ``change_prob`` of a prediction: uint8 ``round(254 p)``, 255 where unknown."""
    return encode_products(prob, np.ones(prob.shape, bool), threshold=None)["change_prob"]


def evaluate_pairs(
    predictor: TilePredictor,
    pairs: Sequence[PairFiles],
    *,
    threshold: float,
    batch_size: int = 1,
    semantic_classes: Mapping[int, Sequence[str]] | None = None,
    progress: bool = False,
) -> tuple[ConfusionAccumulator, SemanticAccumulator | None]:
    """Predict every pair and sum the confusion matrices at a numeric threshold.

    Args:
        predictor: the tile predictor (its ``target_classes`` restrict the change
            when it returns class maps).
        pairs: the pairs to score.
        threshold: change probability above which a pixel is changed.
        batch_size: pairs of one size per ``predict`` call.
        semantic_classes: dataset class id -> vocabulary names (needs class maps).
        progress: show a progress bar on stderr.

    Returns:
        The binary accumulator and, with ``semantic_classes``, the semantic one.
    """
    scores = Scores(predictor.target_classes, predictor.class_names, semantic_classes)
    for out in predict_pairs(predictor, pairs, batch_size=batch_size, progress=progress):
        scores.add(out, *numeric_change(out.prob, threshold))
    return scores.binary, scores.semantic


def score_predictions(outputs: Iterable[PairPrediction], scores: Scores, threshold: float | str, *,
                      fit: FitScope, ignore_zero: bool = False) -> Any:
    """Threshold every prediction and count it; the threshold as ``eval`` records it.

    Args:
        outputs: the pairs' predictions.
        scores: the matrices to add to.
        threshold: ``model.threshold``: a number, or ``otsu``.
        fit: with Otsu, one level per pair or one over the dataset.
        ignore_zero: leave level 0 out of Otsu's histogram (``ucd_scm``).

    Returns:
        The number; or with Otsu ``{"method": "otsu", "fit": "pair", "levels": {pair: k}}``
        or ``{"method": "otsu", "fit": "dataset", "level": k, "value": k / 254, "valid_pixels": n}``.
    """
    if threshold != "otsu":
        for out in outputs:
            scores.add(out, *numeric_change(out.prob, float(threshold)))
        return threshold
    if fit == "pair":
        per_pair: dict[str, int] = {}
        for out in outputs:
            enc = levels(out.prob)
            level = choose_threshold(level_histogram(enc), ignore_zero=ignore_zero).level
            per_pair[out.pair.name] = level
            scores.add(out, enc >= level, enc != NODATA)
        return {"method": "otsu", "fit": "pair", "levels": per_pair}
    with tempfile.TemporaryDirectory(prefix="s2c-eval-") as tmp:  # the levels wait for the dataset's threshold
        hist = np.zeros(255, np.int64)
        kept: list[tuple[PairFiles, Path]] = []
        for k, out in enumerate(outputs):
            enc = levels(out.prob)
            hist += level_histogram(enc)
            path = Path(tmp) / f"{k}.npz"
            arrays = {"enc": enc, "label": out.label, "class_t1": out.class_t1, "class_t2": out.class_t2}
            np.savez(path, **{n: a for n, a in arrays.items() if a is not None})  # type: ignore[arg-type]
            kept.append((out.pair, path))
        chosen = choose_threshold(hist, ignore_zero=ignore_zero)
        for pair, path in kept:
            with np.load(path) as saved:
                enc = saved["enc"]
                out = PairPrediction(pair, saved["label"], np.zeros((0, 0), np.float32),
                                     saved["class_t1"] if "class_t1" in saved else None,
                                     saved["class_t2"] if "class_t2" in saved else None)
            scores.add(out, enc >= chosen.level, enc != NODATA)
    return {**chosen.to_json(), "fit": "dataset"}


def evaluate_dataset(
    dataset: str | os.PathLike[str],
    cfg: Config,
    *,
    targets: Sequence[str] = (),
    semantic_classes: Mapping[int, Sequence[str]] | None = None,
    preset: str | None = None,
    predictor: TilePredictor | None = None,
    fit: FitScope = "pair",
    progress: bool = False,
) -> EvalResult:
    """Run the configured comparator on every pair of a dataset and score it.

    Args:
        dataset: a DATASET folder (``A/``, ``B/``, ``label/``).
        cfg: the config (its ``model`` section builds the predictor).
        targets: target class names, replacing ``model.targets``.
        semantic_classes: dataset class id -> vocabulary names; scores semantic
            change (needs an identifier and ``label1/``, ``label2/``).
        preset: a semantic dataset's preset (``second``, ``sc_scd``): its vocabulary
            replaces ``model.vocab``, its classes are ``semantic_classes`` and the
            binary targets are the vocabulary's own (every scored class) unless
            ``targets`` names others.
        predictor: an already built predictor (else one is built from ``cfg.model``).
        fit: a fitted comparator, and Otsu's threshold, are fitted to each ``pair`` (the
            paper's protocol) or once to the ``dataset``.
        progress: show a progress bar on stderr.

    Returns:
        The metrics.

    Raises:
        InputError: bad dataset folder or files, or a pair or the dataset that cannot be
            fitted (exit code 3).
        ConfigError: targets or semantic classes without an identifier, unknown names,
            a preset with semantic classes (exit code 2).
        CheckpointError: a checkpoint the config needs is missing (exit code 2).
    """
    t0 = time.perf_counter()
    model = cfg.model
    if preset is not None:
        if semantic_classes:
            raise ConfigError(f"--preset {preset} and --class both give the semantic classes; drop one")
        chosen = eval_preset(preset)
        model = dataclasses.replace(model, vocab=chosen.vocab, targets=())
        semantic_classes = chosen.semantic_classes
    data = open_dataset(dataset)
    if targets:
        model = dataclasses.replace(model, targets=tuple(targets))
    if (targets or semantic_classes) and model.identifier == "none":
        raise ConfigError(
            "--targets and --class need an identifier, but model.identifier is 'none' (category-agnostic "
            "change); use a config with model.identifier: segearth_ov3"
        )
    if semantic_classes and not data.semantic:
        raise InputError(
            f"dataset {str(data.root)!r} has no per-date class maps for semantic scores; add label1/ and "
            "label2/ (class ids per pixel, same names as A/) or drop --class"
        )
    cfg = dataclasses.replace(cfg, model=model)
    if predictor is None:
        from s2c_batch.kernels.predictors.build import build_predictor

        predictor = build_predictor(model)
    comparator = dataset_comparator(predictor, data.pairs, cfg, fit=fit)
    if fits_each_pair(cfg, fit):
        outputs = predict_fitted_pairs(predictor, data.pairs, cfg, progress=progress)
    else:
        outputs = predict_pairs(bind(predictor, comparator, fitted=model.fitted), data.pairs,
                                batch_size=model.batch_size, progress=progress)
    scores = Scores(predictor.target_classes, predictor.class_names, semantic_classes)
    threshold = score_predictions(outputs, scores, "otsu" if model.otsu else model.numeric_threshold("eval"),
                                  fit=fit, ignore_zero=model.spec.needs.otsu)
    described: dict[str, Any] = {
        "comparator": model.comparator, "identifier": model.identifier, "threshold": threshold,
        "targets": [predictor.class_names[i] for i in predictor.target_classes],
    }
    if model.fitted or model.otsu:
        described["fit"] = fit
    if model.fitted:
        described["standardize"] = model.standardize
        if comparator is not None:
            described["fitted"] = comparator.to_json()
    if model.identifier != "none":
        described["vocab"] = model.vocab
    if preset is not None:
        described["preset"] = preset
    return EvalResult(
        dataset=data.root, pairs=len(data), metrics=scores.binary.metrics(),
        semantic=scores.semantic.metrics() if scores.semantic is not None else None,
        class_names={int(k): tuple(v) for k, v in semantic_classes.items()} if semantic_classes else None,
        model=described, seconds=time.perf_counter() - t0,
    )


def write_json(result: EvalResult, path: str | os.PathLike[str]) -> Path:
    """Write :meth:`EvalResult.to_dict` as JSON.

    Raises:
        OutputError: the file cannot be written (exit code 4).
    """
    out = Path(path)
    try:
        out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write --json {str(out)!r}: {exc}; choose a writable path") from exc
    return out


def format_eval_table(result: EvalResult) -> str:
    """The metrics as a text table (values as fractions, as ``s2c-batch score`` prints them)."""
    m = result.metrics
    model = result.model
    targets = ", ".join(model.get("targets", [])) or "-"
    lines = [
        f"dataset: {result.dataset} ({result.pairs} pairs)",
        f"model:   comparator {model.get('comparator')}, identifier {model.get('identifier')}, "
        f"targets {targets}, threshold {describe_threshold(model.get('threshold'))}"
        + (f", standardize {model['standardize']}" if "standardize" in model else "")
        + ({"pair": ", fitted to each pair", "dataset": ", fitted to the whole dataset"}.get(model.get("fit", ""), ""))
        + (f", vocab {model['vocab']}" if "vocab" in model else "")
        + (f", preset {model['preset']}" if "preset" in model else ""),
        f"{'metric':<10} {'value':>8}",
    ]
    for name, value in (("F1^c", m.f1), ("IoU^c", m.iou), ("Kappa", m.kappa), ("Precision", m.precision),
                        ("Recall", m.recall), ("OA", m.oa)):
        lines.append(f"{name:<10} {value:>8.4f}")
    lines.append(f"pixels: {m.n} counted (TP {m.tp}, FP {m.fp}, FN {m.fn}, TN {m.tn})")
    if result.semantic is not None:
        sem = result.semantic
        lines.append(f"{'class':<22} {'F1':>8} {'IoU':>8} {'OA':>8} {'Kappa':>8}")
        for cls, cm in sem.per_class.items():
            label = f"{cls} {'+'.join((result.class_names or {}).get(cls, ()))}"
            lines.append(f"{label:<22} {cm.f1:>8.4f} {cm.iou:>8.4f} {cm.oa:>8.4f} {cm.kappa:>8.4f}")
        lines.append(f"{'mean':<22} {sem.mf1:>8.4f} {sem.miou:>8.4f} {sem.moa:>8.4f} {sem.mkappa:>8.4f}")
    if result.paper is not None:
        mine = result.paper.get("this_config")
        lines.append(f"this config runs the paper's {mine['method']}" if mine else
                     "this config runs none of the paper's methods")
        lines.append(format_paper(result.paper))
    return "\n".join(lines)

