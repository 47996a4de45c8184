"""The mask-level comparators' decision rules on hand-made masks and features, against numpy oracles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from s2c_batch.kernels.comparators.mask_level.anychange import AnyChange, anychange
from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.dynamicearth import DynamicEarth, imc, mci
from s2c_batch.kernels.comparators.mask_level.evidence import OWNER_WEIGHT, TileEvidence, owner_weight
from s2c_batch.kernels.comparators.mask_level.inst_ceg import InstCEG, inst_ceg, overlap_gate
from s2c_batch.kernels.comparators.mask_level.latent_match import (
    angle_cosine,
    change_confidence,
    confidence_probability,
)
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, box_nms, mask_iou, mask_means, owned
from s2c_batch.kernels.comparators.mask_level.ucd_scm import UCDSCM, ucd_scm
from s2c_batch.kernels.comparators.options import DynamicEarthOptions

import comparator_oracles as oracles

H = W = 32
G = 8  # token grid
C = 6


def rect(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0:r1, c0:c1] = True
    return m


def stack(*masks: np.ndarray) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, H, W), bool)


def mset(masks: np.ndarray, scores: list[float] | None = None) -> MaskSet:
    s = scores if scores is not None else [0.9] * len(masks)
    return MaskSet(torch.from_numpy(masks), torch.tensor(s, dtype=torch.float32))


# The events of one tile, as masks of each date and the features that go with them. Features are
# a "ground" vector everywhere and a "roof" vector on the tokens an object covers at that date.
OBJECTS = {  # token rectangles (r0, c0, r1, c1) of the 8 x 8 grid; pixels = 4 x tokens
    "unchanged": ((0, 0, 2, 2), (0, 0, 2, 2)),
    "moved": ((0, 4, 2, 6), (3, 4, 5, 6)),
    "appeared": (None, (6, 0, 8, 2)),
    "vanished": ((6, 5, 8, 7), None),
    "grew": ((3, 0, 4, 2), (3, 0, 5, 3)),
}


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
    """Masks of t1 and t2 and features of t1 and t2; ``index[name] = (i1, i2)`` (-1: absent)."""
    rng = np.random.default_rng(seed)
    ground, roof = rng.normal(size=C), rng.normal(size=C)
    f1 = np.tile(ground[:, None, None], (1, G, G)) + 0.05 * rng.normal(size=(C, G, G))
    f2 = np.tile(ground[:, None, None], (1, G, G)) + 0.05 * rng.normal(size=(C, G, G))
    m1, m2, index = [], [], {}
    for name, (a, b) in OBJECTS.items():
        i1 = i2 = -1
        if a is not None:
            f1[:, a[0] : a[2], a[1] : a[3]] = roof[:, None, None]
            m1.append(rect(*(4 * v for v in a)))
            i1 = len(m1) - 1
        if b is not None:
            f2[:, b[0] : b[2], b[1] : b[3]] = roof[:, None, None]
            m2.append(rect(*(4 * v for v in b)))
            i2 = len(m2) - 1
        index[name] = (i1, i2)
    return stack(*m1), stack(*m2), f1.astype(np.float32), f2.astype(np.float32), index


def evidence(m1: np.ndarray, m2: np.ndarray, f1: np.ndarray, f2: np.ndarray, **kw: object) -> TileEvidence:
    base: dict[str, object] = {
        "size": (H, W), "core": torch.ones(H, W, dtype=torch.bool),
        "features": (torch.from_numpy(f1), torch.from_numpy(f2)),
    }
    base.update(kw)
    if "proposals" not in base and "instances" not in base:
        base["instances"] = (mset(m1), mset(m2))
    return TileEvidence(**base)  # type: ignore[arg-type]


def test_mask_means__equal_the_mean_of_the_upsampled_features() -> None:
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(5, 7, 9)).astype(np.float32)
    masks = rng.random((4, 23, 31)) > 0.6
    up = oracles.upsample(feats, (23, 31))
    want = np.stack([up[:, m].mean(axis=1) for m in masks])
    got = mask_means(torch.from_numpy(feats), torch.from_numpy(masks)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_change_confidence__equals_numpy_oracle() -> None:
    m1, m2, f1, f2, _ = scene()
    masks = np.concatenate([m1, m2])
    got = change_confidence(torch.from_numpy(f1), torch.from_numpy(f2), torch.from_numpy(masks)).numpy()
    np.testing.assert_allclose(got, oracles.latent_confidence(f1, f2, masks), atol=1e-5)


def test_confidence_probability__is_above_half_exactly_when_changed() -> None:
    c = torch.linspace(-1, 1, 2001)
    for theta in (0.0, 90.0, 145.0, 155.0, 180.0):
        p = confidence_probability(c, theta)
        assert torch.equal(p > 0.5, c > angle_cosine(theta))
        assert bool((p[1:] >= p[:-1]).all()) and float(p.min()) >= 0 and float(p.max()) <= 1


@pytest.mark.parametrize("theta", [145.0, 155.0, 170.0])
def test_anychange__equals_numpy_oracle_on_moved_appeared_vanished_grew_unchanged(theta: float) -> None:
    m1, m2, f1, f2, index = scene()
    s1, s2 = np.linspace(0.9, 0.6, len(m1)), np.linspace(0.95, 0.7, len(m2))
    ev = evidence(m1, m2, f1, f2, instances=(mset(m1, list(s1)), mset(m2, list(s2))))
    got = anychange(ev, theta=theta, nms_thresh=0.7, max_area=0.8, max_changes=1000)
    want = oracles.anychange(m1, s1, m2, s2, f1, f2, theta=theta)
    np.testing.assert_array_equal(got.prob.numpy() > 0.5, want)
    if theta == 155.0:  # the events as one expects them
        for name in ("moved", "appeared", "vanished"):
            i1, i2 = index[name]
            mask = m1[i1] if i1 >= 0 else m2[i2]
            assert want[mask].all(), name
        assert not want[m1[index["unchanged"][0]]].any()


def test_anychange__empty_dates_and_proposals() -> None:
    m1, m2, f1, f2, _ = scene()
    empty = stack()
    for a, b in ((empty, empty), (m1, empty), (empty, m2)):
        ev = evidence(a, b, f1, f2, proposals=(mset(a), mset(b)))
        got = anychange(ev, theta=155, nms_thresh=0.7, max_area=0.8, max_changes=1000)
        want = oracles.anychange(a, np.full(len(a), 0.9), b, np.full(len(b), 0.9), f1, f2, theta=155)
        np.testing.assert_array_equal(got.prob.numpy() > 0.5, want)
    assert not (anychange(evidence(empty, empty, f1, f2), theta=155, nms_thresh=0.7, max_area=0.8,
                          max_changes=9).prob > 0).any()


def test_anychange__nms_between_dates_area_filter_and_cap() -> None:
    _, _, f1, f2, _ = scene()
    a = rect(20, 16, 28, 24)  # a changed object, found at both dates with boxes overlapping by IoU 0.78
    b = rect(20, 16, 28, 23)
    big = rect(0, 0, 32, 30)  # 94% of the tile: dropped
    f2[:, 5:7, 4:6] = -f1[:, 5:7, 4:6]
    ev = evidence(stack(a, big), stack(b), f1, f2, instances=(mset(stack(a, big), [0.8, 0.99]), mset(stack(b), [0.9])))
    got = anychange(ev, theta=155, nms_thresh=0.7, max_area=0.8, max_changes=1000)
    assert len(got.changed) == 1 and torch.equal(got.changed.masks[0], torch.from_numpy(b))  # the higher score
    np.testing.assert_array_equal(got.prob.numpy() > 0.5, b)  # the suppressed mask is not painted
    m1, m2, f1, f2, _ = scene()
    capped = anychange(evidence(m1, m2, f1, f2), theta=155, nms_thresh=0.7, max_area=0.8, max_changes=2)
    want = oracles.anychange(m1, np.full(len(m1), 0.9), m2, np.full(len(m2), 0.9), f1, f2, theta=155, cap=2)
    assert len(capped.changed) == 2
    np.testing.assert_array_equal(capped.prob.numpy() > 0.5, want)


@pytest.mark.parametrize("gate", [0.0, 0.01, 0.5])
def test_inst_ceg__equals_numpy_oracle(gate: float) -> None:
    m1, m2, f1, f2, index = scene()
    got = inst_ceg(evidence(m1, m2, f1, f2), gate=gate)
    w1, w2 = oracles.inst_ceg(m1, m2, gate)
    want = oracles.union(m1[w1], (H, W)) | oracles.union(m2[w2], (H, W))
    np.testing.assert_array_equal(got.prob.numpy(), want.astype(np.float32))
    if gate == 0.01:  # appear and vanish are caught, growth and no change are not
        changed1, changed2 = overlap_gate(torch.from_numpy(m1), torch.from_numpy(m2), gate)
        assert changed1[index["moved"][0]] and changed2[index["moved"][1]]
        assert changed2[index["appeared"][1]] and changed1[index["vanished"][0]]
        assert not changed1[index["grew"][0]] and not changed2[index["grew"][1]]
        assert not changed1[index["unchanged"][0]]


def test_inst_ceg__empty_dates() -> None:
    m1, m2, f1, f2, _ = scene()
    empty = stack()
    only2 = inst_ceg(evidence(empty, m2, f1, f2), gate=0.01)
    np.testing.assert_array_equal(only2.prob.numpy() > 0, m2.any(axis=0))
    only1 = inst_ceg(evidence(m1, empty, f1, f2), gate=0.01)
    np.testing.assert_array_equal(only1.prob.numpy() > 0, m1.any(axis=0))
    assert not inst_ceg(evidence(empty, empty, f1, f2), gate=0.01).prob.any()


def test_mask_iou__equals_numpy() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 9, 11)) > 0.5, rng.random((4, 9, 11)) > 0.7
    b[0] = False
    np.testing.assert_allclose(mask_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(),
                               oracles.iou_matrix(a, b), atol=1e-6)


def test_box_nms__equals_greedy_numpy_nms() -> None:
    rng = np.random.default_rng(6)
    masks = stack(*(rect(r, c, r + h, c + w) for r, c, h, w in rng.integers(1, 14, size=(12, 4))))
    scores = rng.random(len(masks))
    got = box_nms(torch.from_numpy(masks), torch.from_numpy(scores).float(), 0.5).tolist()
    assert got == oracles.box_nms(masks, scores, 0.5)


@pytest.mark.parametrize("theta", [135.0, 160.0])
def test_dynamicearth_imc__gate_then_match_equals_numpy_oracle(theta: float) -> None:
    m1, m2, f1, f2, index = scene()
    got = imc(evidence(m1, m2, f1, f2), theta=theta, gate=0.01)
    w1, w2 = oracles.inst_ceg(m1, m2, 0.01)
    survivors = np.concatenate([m1[w1], m2[w2]])
    conf = oracles.latent_confidence(f1, f2, survivors)
    want = oracles.union(survivors[conf > np.cos(np.radians(theta))], (H, W))
    np.testing.assert_array_equal(got.prob.numpy() > 0.5, want)
    assert not (got.prob.numpy()[m2[index["grew"][1]]] > 0).any()  # the gate drops it before matching


@pytest.mark.parametrize("instance_targets", [True, False])
def test_dynamicearth_mci__class_rule_equals_numpy_oracle(instance_targets: bool) -> None:
    m1, m2, f1, f2, index = scene()
    # class scores of 3 classes: 0 background, 1 building (the target), 2 water
    s1, s2 = np.zeros((3, H, W), np.float32), np.zeros((3, H, W), np.float32)
    s1[0], s2[0] = 0.25, 0.25  # no ties between mean class scores
    for masks, s in ((m1, s1), (m2, s2)):
        for m in masks:
            s[1][m] = 0.9
    s1[2][m2[index["appeared"][1]]] = 0.95  # the appeared building stood on water at t1
    p1, p2 = mset(m1, [0.9] * len(m1)), mset(m2, [0.8] * len(m2))
    ev = evidence(m1, m2, f1, f2, proposals=(p1, p2), class_scores=(torch.from_numpy(s1), torch.from_numpy(s2)),
                  targets=(1,), prob_thd=0.1)
    got = mci(ev, theta=145, nms_thresh=0.7, instance_targets=instance_targets)
    masks = np.concatenate([m1, m2])
    date = np.array([1] * len(m1) + [2] * len(m2))
    keep = oracles.box_nms(masks, np.array([0.9] * len(m1) + [0.8] * len(m2)), 0.7)
    masks, date = masks[keep], date[keep]
    conf = oracles.latent_confidence(f1, f2, masks)
    want = np.zeros((H, W), bool)
    for m, d, c in zip(masks, date, conf, strict=True):
        k1, k2 = oracles.mask_class(s1, m, 0.1), oracles.mask_class(s2, m, 0.1)
        own = (k1 if d == 1 else k2) == 1
        rule = k1 != k2 and (own if instance_targets else (k1 == 1 or k2 == 1))
        if rule and c > np.cos(np.radians(145)):
            want |= m
    np.testing.assert_array_equal(got.prob.numpy() > 0.5, want)
    assert want[m2[index["appeared"][1]]].all()


def test_ucd_scm__equals_numpy_oracle() -> None:
    rng = np.random.default_rng(7)
    levels = [[rng.normal(size=(8, 16, 16)).astype(np.float32), rng.normal(size=(8, 8, 8)).astype(np.float32),
               rng.normal(size=(8, 4, 4)).astype(np.float32)] for _ in range(2)]
    m1, m2, f1, f2, _ = scene()
    s1, s2 = (rng.random((3, H, W)).astype(np.float32) for _ in range(2))
    ev = evidence(m1, m2, f1, f2, proposals=(mset(m1), mset(m2)),
                  class_scores=(torch.from_numpy(s1), torch.from_numpy(s2)), targets=(1, 2),
                  levels=tuple([torch.from_numpy(x) for x in lv] for lv in levels))
    got = ucd_scm(ev, min_mask_area=20, channels=4).prob.numpy()
    want = oracles.ucd_scm(levels[0], levels[1], m1, m2, s1[1:].max(axis=0), s2[1:].max(axis=0), (H, W),
                           channels=4, min_area=20)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_owned__decides_masks_on_tile_borders_by_their_centroid() -> None:
    core = torch.zeros(H, W, dtype=torch.bool)
    core[:, :16] = True  # the left half is this tile's core
    inside = rect(4, 2, 10, 8)
    across_mine = rect(4, 10, 10, 20)  # centroid column 14.5: mine
    across_theirs = rect(12, 13, 18, 23)  # centroid column 17.5: the neighbour's
    masks = torch.from_numpy(stack(inside, across_mine, across_theirs, np.zeros((H, W), bool)))
    assert owned(masks, core).tolist() == [True, True, False, False]
    weight = owner_weight(masks, core)
    np.testing.assert_array_equal(weight.numpy() == OWNER_WEIGHT, inside | across_mine)
    assert float(weight.min()) == 1.0


def test_mask_comparator__dispatches_and_resolves_release_defaults() -> None:
    m1, m2, f1, f2, _ = scene()
    ev = evidence(m1, m2, f1, f2)
    assert DynamicEarth().dynamicearth.angle == 135.0
    mci_spec = DynamicEarth(dynamicearth=DynamicEarthOptions(mode="mci"))
    assert mci_spec.dynamicearth.angle == 145.0 and mci_spec.generator().stability_score_offset == 0.9
    assert AnyChange().generator().stability_score_offset == 1.0
    assert mci_spec.uses_proposals(True) and not mci_spec.uses_instances(True)
    assert AnyChange().uses_instances(True) and AnyChange().uses_proposals(False)
    a = InstCEG().decide(ev)
    b = inst_ceg(ev, gate=0.01)
    assert torch.equal(a.prob, b.prob)
    assert InstCEG().to_json() == {"comparator": "inst_ceg", "inst_ceg": {"gate": 0.01}}
    assert dataclasses.asdict(AnyChange())["anychange"]["theta"] == 155.0
    assert mci_spec.to_json()["comparator"] == "dynamicearth" and set(mci_spec.to_json()) == {
        "comparator", "amg", "dynamicearth"}
    assert isinstance(UCDSCM(), MaskComparator) and UCDSCM().uses_levels and UCDSCM().uses_proposals(True)
