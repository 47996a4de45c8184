"""``s2c-batch eval``: the paper's metrics of the predictor on a change-detection dataset.

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
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2c_batch.kernels.learn.metrics import BinaryMetrics, ConfusionAccumulator, SemanticAccumulator, SemanticMetrics
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.raster.encode import encode_products, is_change
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import ConfigError, InputError, OutputError
from s2c_batch.pipeline.learn.dataset import PairFiles, open_dataset, read_class_map, read_pair
from s2c_batch.pipeline.learn.presets import eval_preset


@dataclass(frozen=True)
class EvalResult:
    """The metrics of one dataset.

    Attributes:
        dataset: the dataset folder.
        pairs: number of pairs scored.
        metrics: binary change metrics (F1^c, IoU^c, Kappa, ...) of the summed confusion matrix.
        semantic: per-class metrics and their means, or None.
        class_names: dataset class id -> vocabulary names scored, for ``semantic``.
        model: what ran (comparator, identifier, targets, threshold).
        seconds: wall time.
    """

    dataset: Path
    pairs: int
    metrics: BinaryMetrics
    semantic: SemanticMetrics | None = None
    class_names: dict[int, tuple[str, ...]] | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

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


_Item = tuple[PairFiles, np.ndarray, np.ndarray, np.ndarray]


def _batches(pairs: Sequence[PairFiles], size: int) -> Iterator[list[_Item]]:
    """Read pairs and group consecutive ones of one image size, ``size`` at most."""
    batch: list[_Item] = []
    for pair in pairs:
        t1, t2, label = read_pair(pair)
        if batch and (len(batch) >= size or batch[0][1].shape != t1.shape):
            yield batch
            batch = []
        batch.append((pair, t1, t2, label))
    if batch:
        yield batch


def evaluate_pairs(
    predictor: TilePredictor,
    pairs: Sequence[PairFiles],
    *,
    threshold: float,
    batch_size: int = 1,
    semantic_classes: Mapping[int, Sequence[str]] | None = None,
    progress: bool = False,
) -> tuple[ConfusionAccumulator, SemanticAccumulator | None]:
    """Predict every pair and sum the confusion matrices.

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
    from tqdm import tqdm

    binary = ConfusionAccumulator()
    semantic = SemanticAccumulator(sorted(semantic_classes)) if semantic_classes else None
    lut = _class_lut(semantic_classes, predictor.class_names) if semantic_classes else None
    bar = tqdm(total=len(pairs), desc="eval", unit="pair", disable=not progress, file=sys.stderr)
    try:
        for batch in _batches(pairs, max(1, batch_size)):
            t1 = np.stack([b[1] for b in batch]).astype(np.float32) / np.float32(255)
            t2 = np.stack([b[2] for b in batch]).astype(np.float32) / np.float32(255)
            pred = predictor.predict(t1, t2)
            for i, (pair, _, _, label) in enumerate(batch):
                c1 = pred.class_t1[i] if pred.class_t1 is not None else None
                c2 = pred.class_t2[i] if pred.class_t2 is not None else None
                mask = encode_products(
                    pred.prob[i], np.ones(label.shape, bool), threshold=threshold, class_t1=c1, class_t2=c2,
                    target_classes=predictor.target_classes, with_classes=c1 is not None,
                )["change_mask"]
                binary.update(label, mask)
                if semantic is not None and lut is not None and c1 is not None and c2 is not None:
                    assert pair.class_t1 is not None and pair.class_t2 is not None  # checked by the caller
                    change = is_change(pred.prob[i], threshold).astype(np.uint8)
                    semantic.update(label, read_class_map(pair.class_t1), read_class_map(pair.class_t2),
                                    change, lut[c1], lut[c2])
            bar.update(len(batch))
    finally:
        bar.close()
    return binary, semantic


def evaluate_dataset(
    dataset: str | os.PathLike[str],
    cfg: Config,
    *,
    targets: Sequence[str] = (),
    semantic_classes: Mapping[int, Sequence[str]] | None = None,
    preset: str | None = None,
    predictor: TilePredictor | None = None,
    progress: bool = False,
) -> EvalResult:
    """Run the configured predictor on every pair of a dataset and score it.

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
        progress: show a progress bar on stderr.

    Returns:
        The metrics.

    Raises:
        InputError: bad dataset folder or files (exit code 3).
        ConfigError: targets or semantic classes without an identifier, unknown names,
            a preset with semantic classes (exit code 2).
        CheckpointError: a checkpoint the config needs is missing (exit code 2).
    """
    t0 = time.perf_counter()
    model = cfg.model
    if model.fitted:
        raise ConfigError(
            f"s2c-batch eval scores tile predictors on a dataset of image pairs; model.comparator={model.comparator} "
            f"with model.threshold={model.threshold!r} and model.standardize={model.standardize} is fitted to a "
            "whole scene: run it on a scene with `s2c-batch compare T1 T2 --truth TRUTH.tif`"
        )
    threshold = model.numeric_threshold("s2c-batch eval")
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
    if predictor is None:
        from s2c_batch.kernels.predictors.build import build_predictor

        predictor = build_predictor(model)
    binary, semantic = evaluate_pairs(
        predictor, data.pairs, threshold=threshold, batch_size=model.batch_size,
        semantic_classes=semantic_classes, progress=progress,
    )
    described: dict[str, Any] = {
        "comparator": model.comparator, "identifier": model.identifier, "threshold": model.threshold,
        "targets": [predictor.class_names[i] for i in predictor.target_classes],
    }
    if model.identifier != "none":
        described["vocab"] = model.vocab
    if preset is not None:
        described["preset"] = preset
    return EvalResult(
        dataset=data.root, pairs=len(data), metrics=binary.metrics(),
        semantic=semantic.metrics() if semantic is not None else None,
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
        f"targets {targets}, threshold {model.get('threshold')}"
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
    return "\n".join(lines)
