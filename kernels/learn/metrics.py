"""The paper's change-detection metrics, from a confusion matrix summed over a dataset.

Binary change (class 1 = changed), as the authors' ``util/utils.py`` ``Evaluator``:
the 2x2 confusion matrix (rows = truth, columns = prediction) is summed over
every pixel of every pair, and the metrics are computed once from the sum::

    cm = [[TN, FP],
          [FN, TP]]

    precision = TP / (TP + FP)            recall = TP / (TP + FN)
    F1^c      = 2 TP / (2 TP + FP + FN)   (= 2PR / (P + R) wherever that is defined)
    IoU^c     = TP / (TP + FP + FN)       OA = (TP + TN) / N
    Kappa     = (OA - PE) / (1 - PE),  PE = ((TP+FP)(TP+FN) + (TN+FN)(FP+TN)) / N^2

The value 255 in the truth or in the prediction means "ignore" (nodata): such
pixels are counted in neither. Counts are 64-bit integers (a 40000^2 scene has
1.6e9 pixels) and the metrics are computed with exact Python integers before
one final division.

Degenerate cases. The authors compute these ratios with numpy and get ``nan``
for 0/0; we keep ``nan`` for every ratio whose denominator is 0, so a dataset
without any change in truth *and* prediction reports ``F1 = IoU = nan`` as
theirs does:

- ``TP + FP = 0`` (nothing predicted as changed): precision is ``nan``.
- ``TP + FN = 0`` (no change in the truth): recall is ``nan``.
- ``TP + FP + FN = 0`` (no change in truth nor prediction): F1 and IoU are ``nan``.
- ``N = 0`` (every pixel ignored): every metric is ``nan``.
- ``PE = 1`` (truth and prediction are all one and the same class): Kappa is ``nan``.

One deliberate difference: when ``TP = 0`` but ``FP + FN > 0`` (the model
misses every change, or predicts change where there is none) the authors'
``2PR/(P+R)`` is ``0/0 = nan``; we return ``F1 = 0.0``, the limit of the same
formula and the value ``2TP/(2TP+FP+FN)`` gives. IoU is 0.0 there in both.

Semantic (per-class) change: for each class ``c`` the truth is
``changed & (gt_t1 == c | gt_t2 == c)`` and the prediction is
``pred_change & (pred_t1 == c | pred_t2 == c)``; the binary metrics above are
computed per class and mF1, mIoU, mOA, mKappa are their plain means (a ``nan``
class makes the mean ``nan``, as in the authors' arithmetic mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: truth or prediction value that is ignored (nodata).
IGNORE: int = 255

#: rows of elements processed at once, to bound temporary memory on big blocks.
_CHUNK_ELEMENTS: int = 1 << 22

# value -> code: 0 unchanged, 1 changed, 2 ignored, 3 invalid.
_LUT_UINT8 = np.full(256, 3, np.uint8)
_LUT_UINT8[0] = 0
_LUT_UINT8[1] = 1
_LUT_UINT8[IGNORE] = 2


@dataclass(frozen=True)
class BinaryMetrics:
    """The paper's metrics of the changed class, and the counts they come from.

    Attributes:
        tp: changed in truth and prediction.
        fp: unchanged in truth, changed in prediction.
        fn: changed in truth, unchanged in prediction.
        tn: unchanged in both.
        precision: ``TP / (TP + FP)``.
        recall: ``TP / (TP + FN)``.
        f1: F1^c, ``2TP / (2TP + FP + FN)``.
        iou: IoU^c, ``TP / (TP + FP + FN)``.
        oa: overall accuracy ``(TP + TN) / N``.
        kappa: Cohen's kappa ``(OA - PE) / (1 - PE)``.
    """

    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    iou: float
    oa: float
    kappa: float

    @property
    def n(self) -> int:
        """Number of counted (not ignored) pixels."""
        return self.tp + self.fp + self.fn + self.tn

    def to_dict(self) -> dict[str, int | float | None]:
        """Plain dict for JSON; ``nan`` becomes ``None``."""
        out: dict[str, int | float | None] = {}
        for name in ("f1", "iou", "kappa", "precision", "recall", "oa"):
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        out.update(tp=self.tp, fp=self.fp, fn=self.fn, tn=self.tn, n=self.n)
        return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def binary_metrics(cm: np.ndarray) -> BinaryMetrics:
    """Metrics of class 1 from a 2x2 confusion matrix.

    Args:
        cm: integer ``[2, 2]``, rows = truth, columns = prediction,
            i.e. ``[[TN, FP], [FN, TP]]``.

    Returns:
        The metrics; degenerate ratios are ``nan`` (see the module docstring).

    Example:
        >>> m = binary_metrics(np.array([[5, 1], [2, 2]]))
        >>> round(m.f1, 4), round(m.iou, 4), m.oa
        (0.5714, 0.4, 0.7)
    """
    cm = np.asarray(cm)
    if cm.shape != (2, 2):
        raise ValueError(f"binary_metrics needs a [2, 2] confusion matrix, got shape {cm.shape!r}")
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    if min(tn, fp, fn, tp) < 0:
        raise ValueError(f"confusion matrix counts must be >= 0, got {cm.tolist()!r}")
    n = tp + fp + fn + tn
    # Kappa with exact integers: (N(TP+TN) - S) / (N^2 - S), S = N^2 * PE.
    s = (tp + fp) * (tp + fn) + (tn + fn) * (fp + tn)
    kappa = _ratio(n * (tp + tn) - s, n * n - s) if n else math.nan
    return BinaryMetrics(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        iou=_ratio(tp, tp + fp + fn),
        oa=_ratio(tp + tn, n),
        kappa=kappa,
    )


def _codes(a: np.ndarray, name: str) -> np.ndarray:
    """Map 0 -> 0, 1 -> 1, IGNORE -> 2; raise on anything else."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype == np.uint8:
        codes = _LUT_UINT8[a]
    elif np.issubdtype(a.dtype, np.integer):
        codes = np.full(a.shape, 3, np.uint8)
        codes[a == 0] = 0
        codes[a == 1] = 1
        codes[a == IGNORE] = 2
    else:
        raise TypeError(f"{name} must be an integer or bool array (0, 1, {IGNORE} = ignore), got dtype {a.dtype}")
    if codes.size and codes.max() == 3:
        bad = np.unique(a[codes == 3])[:5].tolist()
        raise ValueError(
            f"{name} holds values {bad!r}; binary change maps must hold only 0, 1 and {IGNORE} (ignore)"
        )
    return codes


def confusion_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """2x2 confusion matrix of one binary change map against its truth.

    Args:
        truth: ``[...]`` integer or bool, 0 = unchanged, 1 = changed, 255 = ignore.
        pred: same shape and encoding.

    Returns:
        int64 ``[2, 2]``: rows = truth, columns = prediction; pixels that are
        255 in either input are not counted.

    Raises:
        ValueError: shapes differ, or a value other than 0, 1, 255 occurs.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1, 255]), np.array([1, 1, 0, 0])).tolist()
        [[0, 1], [1, 1]]
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape!r} differs from prediction shape {pred.shape!r}")
    t = truth.reshape(-1)
    p = pred.reshape(-1)
    counts = np.zeros(9, np.int64)
    for start in range(0, t.size, _CHUNK_ELEMENTS):
        tc = _codes(t[start : start + _CHUNK_ELEMENTS], "truth")
        pc = _codes(p[start : start + _CHUNK_ELEMENTS], "prediction")
        counts += np.bincount(tc * np.uint8(3) + pc, minlength=9).astype(np.int64)
    # codes 0/1 of truth (rows) x codes 0/1 of prediction (columns); code 2 = ignored.
    return counts.reshape(3, 3)[:2, :2].copy()


class ConfusionAccumulator:
    """Binary confusion matrix summed over many blocks or image pairs.

    Example:
        >>> acc = ConfusionAccumulator()
        >>> acc.update(np.array([[0, 1]]), np.array([[0, 1]])).update(np.array([1]), np.array([0]))
        ConfusionAccumulator(tn=1, fp=0, fn=1, tp=1)
        >>> acc.metrics().recall
        0.5
    """

    def __init__(self) -> None:
        self.matrix: np.ndarray = np.zeros((2, 2), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> ConfusionAccumulator:
        """Add one block or pair (see :func:`confusion_matrix`); returns ``self``."""
        self.matrix += confusion_matrix(truth, pred)
        return self

    def add_matrix(self, cm: np.ndarray) -> ConfusionAccumulator:
        """Add an already computed int ``[2, 2]`` matrix (e.g. from another worker)."""
        cm = np.asarray(cm)
        if cm.shape != (2, 2):
            raise ValueError(f"expected a [2, 2] confusion matrix, got shape {cm.shape!r}")
        self.matrix += cm.astype(np.int64)
        return self

    def metrics(self) -> BinaryMetrics:
        """The metrics of the summed matrix."""
        return binary_metrics(self.matrix)

    def __repr__(self) -> str:
        (tn, fp), (fn, tp) = self.matrix.tolist()
        return f"ConfusionAccumulator(tn={tn}, fp={fp}, fn={fn}, tp={tp})"


@dataclass(frozen=True)
class SemanticMetrics:
    """Per-class binary metrics and their plain means.

    Attributes:
        per_class: class id -> its binary metrics.
        mf1: mean F1 over the classes.
        miou: mean IoU.
        moa: mean OA.
        mkappa: mean Kappa.
    """

    per_class: dict[int, BinaryMetrics]
    mf1: float
    miou: float
    moa: float
    mkappa: float


def semantic_change_masks(
    change: np.ndarray, class_t1: np.ndarray, class_t2: np.ndarray, cls: int
) -> np.ndarray:
    """Binary change of one class: ``change & (class_t1 == cls | class_t2 == cls)``.

    Args:
        change: ``[H, W]`` 0/1 change, 255 = ignore (kept as 255).
        class_t1: ``[H, W]`` class ids at t1.
        class_t2: ``[H, W]`` class ids at t2.
        cls: the class id.

    Returns:
        uint8 ``[H, W]``: 1 where the pixel changed and is ``cls`` at either date,
        255 where ``change`` is 255, else 0.
    """
    change = np.asarray(change)
    if not (change.shape == np.shape(class_t1) == np.shape(class_t2)):
        raise ValueError(
            f"change {change.shape!r}, class_t1 {np.shape(class_t1)!r} and class_t2 "
            f"{np.shape(class_t2)!r} must have the same shape"
        )
    out = ((change == 1) & ((class_t1 == cls) | (class_t2 == cls))).astype(np.uint8)
    out[change == IGNORE] = IGNORE
    return out


class SemanticAccumulator:
    """Per-class binary confusion matrices for semantic (from/to) change.

    Args:
        classes: the class ids to score (e.g. the 6 non-background SECOND classes).
    """

    def __init__(self, classes: Sequence[int]) -> None:
        if len(classes) == 0:
            raise ValueError("SemanticAccumulator needs at least one class id")
        self.classes: tuple[int, ...] = tuple(int(c) for c in classes)
        self.accumulators: dict[int, ConfusionAccumulator] = {c: ConfusionAccumulator() for c in self.classes}

    def update(
        self,
        change_truth: np.ndarray,
        class_t1_truth: np.ndarray,
        class_t2_truth: np.ndarray,
        change_pred: np.ndarray,
        class_t1_pred: np.ndarray,
        class_t2_pred: np.ndarray,
    ) -> SemanticAccumulator:
        """Add one block or pair; all arrays ``[H, W]``; change maps 0/1/255.

        Returns:
            ``self``.
        """
        for c, acc in self.accumulators.items():
            acc.update(
                semantic_change_masks(change_truth, class_t1_truth, class_t2_truth, c),
                semantic_change_masks(change_pred, class_t1_pred, class_t2_pred, c),
            )
        return self

    def metrics(self) -> SemanticMetrics:
        """Per-class metrics and mF1, mIoU, mOA, mKappa (plain means)."""
        per = {c: acc.metrics() for c, acc in self.accumulators.items()}

        def mean(name: str) -> float:
            return float(np.mean([getattr(m, name) for m in per.values()]))

        return SemanticMetrics(per_class=per, mf1=mean("f1"), miou=mean("iou"), moa=mean("oa"), mkappa=mean("kappa"))
