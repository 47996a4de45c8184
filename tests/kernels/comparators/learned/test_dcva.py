"""DCVA on the DINOv2 taps: channel selection, magnitude, and the predictor's DCVA path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2c_batch.kernels.comparators.learned.dcva import (
    DCVA,
    channel_sums,
    select_channels,
    tap_differences,
    token_validity,
)
from s2c_batch.kernels.comparators.registry import comparator_from_json
from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.kernels.predictors.tile import ChangePredictor

from testutils import TINY_MODEL

TINY_DCVA = dataclasses.replace(TINY_MODEL, comparator="dcva", identifier="none")


def test_select_channels__keeps_the_most_variant_per_layer() -> None:
    gen = torch.Generator().manual_seed(0)
    spread = torch.tensor([0.1, 3.0, 0.5, 2.0])[None, :, None, None]
    diffs = [torch.randn(3, 4, 5, 5, generator=gen) * spread, torch.randn(3, 2, 5, 5, generator=gen)]
    tokens = torch.ones(3, 5, 5, dtype=torch.bool)
    tokens[0, 0, 0] = False
    half = [channel_sums([d[:2] for d in diffs], tokens[:2]), channel_sums([d[2:] for d in diffs], tokens[2:])]
    sel = select_channels(half, (1, 3), 0.5)
    assert sel.channels == ((1, 3), (int(np.argmax([diffs[1][:, i][tokens].var(unbiased=False) for i in (0, 1)])),))
    want = diffs[0][:, 1][tokens].double()
    assert sel.scales[0][0] == pytest.approx(float(want.std(unbiased=False)), rel=1e-9)
    assert sel.layers == (1, 3) and sel.reference == 1.0


def test_dcva_probability__equals_numpy_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    diffs = [torch.randn(2, 6, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)]
    model = DCVA(layers=(0, 2), channels=((0, 4), (2,)), scales=((2.0, 0.5), (1.5,)), reference=3.0)
    s = np.sqrt((diffs[0][:, 0].numpy() / 2.0) ** 2 + (diffs[0][:, 4].numpy() / 0.5) ** 2
                + (diffs[1][:, 2].numpy() / 1.5) ** 2)
    np.testing.assert_allclose(model.magnitude(diffs).numpy(), s, rtol=1e-6)
    up = F.interpolate(torch.from_numpy(s)[:, None], size=(10, 12), mode="bilinear", align_corners=True)[:, 0]
    np.testing.assert_allclose(model.probability(diffs, (10, 12)).numpy(), np.minimum(1, up.numpy() / 3.0),
                               rtol=1e-6)
    assert comparator_from_json(model.to_json()) == model


def test_token_validity__most_pixels_valid() -> None:
    valid = torch.zeros(1, 4, 4, dtype=torch.bool)
    valid[0, :2, :] = True
    valid[0, 2, 0] = True
    assert token_validity(valid, 2).tolist() == [[[True, True], [False, False]]]


def test_predictor__dcva_uses_the_backbone_taps() -> None:
    pred = build_predictor(TINY_DCVA)
    assert isinstance(pred, ChangePredictor) and pred.cach is None and pred.backbone is not None
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 64, 64), dtype=np.float32)
    b = rng.random((2, 3, 64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="with_comparator"):
        pred.predict(a, b)
    diffs = pred.dcva_differences(a, b, (1, 3))
    with torch.no_grad():
        x = F.interpolate(torch.from_numpy(np.concatenate([a, b])), size=(252, 252), mode="bilinear",
                          align_corners=False, antialias=True)
        taps = pred.backbone(x)
    want = tap_differences([t[:2] for t in taps], [t[2:] for t in taps], (1, 3))
    for got, exp in zip(diffs, want, strict=True):
        torch.testing.assert_close(got, exp)
    fitted = select_channels([channel_sums(diffs, torch.ones(2, 18, 18, dtype=torch.bool))], (1, 3), 0.25)
    fitted = dataclasses.replace(fitted, reference=5.0)
    out = pred.with_comparator(fitted).predict(a, b)
    np.testing.assert_allclose(out.prob, fitted.probability(want, (64, 64)).numpy(), rtol=1e-5, atol=1e-6)
    assert out.class_t1 is None
