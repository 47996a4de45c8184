"""Tests of s2c_batch.kernels.learn.metrics against hand-computed confusion matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2c_batch.kernels.learn.metrics import (
    ConfusionAccumulator,
    SemanticAccumulator,
    binary_metrics,
    confusion_matrix,
    semantic_change_masks,
)


def test_confusion_matrix__hand_counted() -> None:
    truth = np.array([[0, 0, 0, 1], [1, 1, 0, 0]], np.uint8)
    pred = np.array([[0, 1, 0, 1], [0, 1, 0, 0]], np.uint8)
    # TN: (0,0),(0,2),(1,2),(1,3) = 4; FP: (0,1) = 1; FN: (1,0) = 1; TP: (0,3),(1,1) = 2
    assert confusion_matrix(truth, pred).tolist() == [[4, 1], [1, 2]]
    assert confusion_matrix(truth, pred).dtype == np.int64


def test_confusion_matrix__ignores_255_in_truth_and_prediction() -> None:
    truth = np.array([0, 1, 255, 1, 0], np.uint8)
    pred = np.array([255, 1, 1, 0, 0], np.uint8)
    assert confusion_matrix(truth, pred).tolist() == [[1, 0], [1, 1]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32, np.uint16, np.bool_])
def test_confusion_matrix__dtypes(dtype: type) -> None:
    truth = np.array([0, 1, 1, 0]).astype(dtype)
    pred = np.array([1, 1, 0, 0]).astype(dtype)
    assert confusion_matrix(truth, pred).tolist() == [[1, 1], [1, 1]]


def test_confusion_matrix__rejects_other_values() -> None:
    with pytest.raises(ValueError, match=r"prediction holds values \[2\]"):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]))


def test_confusion_matrix__rejects_float() -> None:
    with pytest.raises(TypeError, match="integer or bool"):
        confusion_matrix(np.array([0.0, 1.0]), np.array([0, 1]))


def test_confusion_matrix__rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"truth shape \(2,\) differs from prediction shape \(3,\)"):
        confusion_matrix(np.zeros(2, np.uint8), np.zeros(3, np.uint8))


def test_confusion_matrix__chunked_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(np.array([0, 1, 255], np.uint8), size=(37, 41))
    pred = rng.choice(np.array([0, 1, 255], np.uint8), size=(37, 41))
    whole = confusion_matrix(truth, pred)
    monkeypatch.setattr("s2c_batch.kernels.learn.metrics._CHUNK_ELEMENTS", 100)
    assert confusion_matrix(truth, pred).tolist() == whole.tolist()
    valid = (truth != 255) & (pred != 255)
    assert whole[1, 1] == np.sum(valid & (truth == 1) & (pred == 1))


def test_binary_metrics__hand_computed() -> None:
    # TN=5 FP=1 FN=2 TP=2, N=10
    m = binary_metrics(np.array([[5, 1], [2, 2]]))
    assert (m.tp, m.fp, m.fn, m.tn, m.n) == (2, 1, 2, 5, 10)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m.f1 == pytest.approx(4 / 7)
    assert m.iou == pytest.approx(0.4)
    assert m.oa == pytest.approx(0.7)
    pe = (3 * 4 + 7 * 6) / 100  # ((TP+FP)(TP+FN) + (TN+FN)(FP+TN)) / N^2 = 0.54
    assert m.kappa == pytest.approx((0.7 - pe) / (1 - pe))
    assert m.kappa == pytest.approx(0.16 / 0.46)


def test_binary_metrics__perfect() -> None:
    m = binary_metrics(np.array([[90, 0], [0, 10]]))
    assert (m.precision, m.recall, m.f1, m.iou, m.oa, m.kappa) == (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_binary_metrics__no_change_in_truth_nor_prediction_is_nan() -> None:
    m = binary_metrics(np.array([[100, 0], [0, 0]]))
    assert math.isnan(m.precision) and math.isnan(m.recall)
    assert math.isnan(m.f1) and math.isnan(m.iou)
    assert m.oa == 1.0
    assert math.isnan(m.kappa)  # PE = 1


def test_binary_metrics__no_change_in_truth_but_predicted() -> None:
    m = binary_metrics(np.array([[90, 10], [0, 0]]))
    assert m.precision == 0.0
    assert math.isnan(m.recall)
    assert m.f1 == 0.0 and m.iou == 0.0
    assert m.oa == pytest.approx(0.9)
    # PE = (10*0 + 90*100)/100^2 = 0.9 -> kappa = 0
    assert m.kappa == pytest.approx(0.0)


def test_binary_metrics__no_change_predicted() -> None:
    m = binary_metrics(np.array([[80, 0], [20, 0]]))
    assert math.isnan(m.precision)
    assert m.recall == 0.0
    assert m.f1 == 0.0 and m.iou == 0.0
    assert m.oa == pytest.approx(0.8)
    assert m.kappa == pytest.approx(0.0)


def test_binary_metrics__all_changed_and_predicted() -> None:
    m = binary_metrics(np.array([[0, 0], [0, 50]]))
    assert (m.precision, m.recall, m.f1, m.iou, m.oa) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert math.isnan(m.kappa)  # PE = 1


def test_binary_metrics__all_wrong() -> None:
    m = binary_metrics(np.array([[0, 30], [70, 0]]))
    assert m.precision == 0.0 and m.recall == 0.0 and m.f1 == 0.0 and m.iou == 0.0 and m.oa == 0.0
    # PE = (30*70 + 70*30) / 100^2 = 0.42 -> kappa = -0.42/0.58
    assert m.kappa == pytest.approx(-0.42 / 0.58)


def test_binary_metrics__empty_is_nan() -> None:
    m = binary_metrics(np.zeros((2, 2), np.int64))
    assert all(math.isnan(v) for v in (m.precision, m.recall, m.f1, m.iou, m.oa, m.kappa))


def test_binary_metrics__large_counts_exact() -> None:
    # a 40000^2 scene: products overflow int64 squared terms if done in numpy
    n = 40000 * 40000
    cm = np.array([[n - 3 * 10**8, 10**8], [10**8, 10**8]], np.int64)
    m = binary_metrics(cm)
    tp, fp, fn, tn = 10**8, 10**8, 10**8, n - 3 * 10**8
    oa = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (tn + fn) * (fp + tn)) / n**2
    assert m.kappa == pytest.approx((oa - pe) / (1 - pe), rel=1e-12)
    assert m.iou == pytest.approx(1 / 3)


def test_binary_metrics__rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\[2, 2\] confusion matrix, got shape \(3,\)"):
        binary_metrics(np.zeros(3))


def test_binary_metrics__to_dict_nan_is_none() -> None:
    d = binary_metrics(np.array([[4, 0], [0, 0]])).to_dict()
    assert d["f1"] is None and d["iou"] is None and d["oa"] == 1.0 and d["n"] == 4


def test_confusion_accumulator__sums_over_pairs() -> None:
    acc = ConfusionAccumulator()
    acc.update(np.array([[0, 1], [1, 0]]), np.array([[0, 1], [0, 0]]))
    acc.update(np.array([1, 1, 0]), np.array([1, 0, 1]))
    assert acc.matrix.tolist() == [[2, 1], [2, 2]]
    assert acc.matrix.dtype == np.int64
    acc.add_matrix(np.array([[1, 0], [0, 1]]))
    m = acc.metrics()
    assert (m.tn, m.fp, m.fn, m.tp) == (3, 1, 2, 3)
    assert m.iou == pytest.approx(3 / 6)


def test_semantic_change_masks__union_of_dates_and_ignore() -> None:
    change = np.array([1, 1, 1, 0, 255], np.uint8)
    c1 = np.array([2, 3, 3, 2, 2])
    c2 = np.array([3, 2, 4, 2, 2])
    assert semantic_change_masks(change, c1, c2, 2).tolist() == [1, 1, 0, 0, 255]


def test_semantic_accumulator__per_class_and_means() -> None:
    change_t = np.array([1, 1, 1, 0, 0, 1], np.uint8)
    c1_t = np.array([1, 2, 1, 1, 2, 2])
    c2_t = np.array([1, 1, 2, 1, 2, 2])
    change_p = np.array([1, 0, 1, 1, 0, 1], np.uint8)
    c1_p = np.array([1, 2, 2, 1, 1, 1])
    c2_p = np.array([1, 2, 2, 1, 1, 1])
    acc = SemanticAccumulator([1, 2]).update(change_t, c1_t, c2_t, change_p, c1_p, c2_p)
    res = acc.metrics()
    # class 1: truth [1,1,1,0,0,0]; pred [1,0,0,1,0,1] -> TP1 FP2 FN2 TN1
    m1 = res.per_class[1]
    assert (m1.tp, m1.fp, m1.fn, m1.tn) == (1, 2, 2, 1)
    # class 2: truth [0,1,1,0,0,1]; pred [0,0,1,0,0,0] -> TP1 FP0 FN2 TN3
    m2 = res.per_class[2]
    assert (m2.tp, m2.fp, m2.fn, m2.tn) == (1, 0, 2, 3)
    assert res.mf1 == pytest.approx((2 / 6 + 2 / 4) / 2)
    assert res.miou == pytest.approx((1 / 5 + 1 / 3) / 2)
    assert res.moa == pytest.approx((2 / 6 + 4 / 6) / 2)
    assert res.mkappa == pytest.approx((res.per_class[1].kappa + m2.kappa) / 2)


def test_semantic_accumulator__nan_class_makes_mean_nan() -> None:
    z = np.zeros(4, np.uint8)
    res = SemanticAccumulator([1]).update(z, z, z, z, z, z).metrics()
    assert math.isnan(res.mf1) and res.moa == 1.0


def test_semantic_accumulator__rejects_no_classes() -> None:
    with pytest.raises(ValueError, match="at least one class"):
        SemanticAccumulator([])
