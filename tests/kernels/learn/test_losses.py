"""Tests of s2c_batch.kernels.learn.losses against hand-computed values and torch's own losses."""

from __future__ import annotations

import math

import pytest
import torch

from s2c_batch.kernels.learn.losses import (
    LossWeights,
    cach_loss,
    change_cross_entropy,
    unchanged_similarity,
)
from s2c_batch.kernels.models.cach import CACHOutputs


def _logits(*pairs: tuple[float, float]) -> torch.Tensor:
    """``[1, 2, 1, N]`` logits from (unchanged, changed) pairs."""
    return torch.tensor(pairs, dtype=torch.float32).T.reshape(1, 2, 1, len(pairs))


def test_change_cross_entropy__hand_computed() -> None:
    # pixel 0: logits (0, ln 3), label 1 -> -log(3/4); pixel 1: (0, 0), label 0 -> log 2; pixel 2 ignored
    logits = _logits((0.0, math.log(3.0)), (0.0, 0.0), (5.0, -5.0))
    target = torch.tensor([[[1, 0, 255]]])
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert float(change_cross_entropy(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_change_cross_entropy__all_ignored_is_zero_with_gradient() -> None:
    logits = torch.randn(2, 2, 3, 3, requires_grad=True)
    loss = change_cross_entropy(logits, torch.full((2, 3, 3), 255))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_unchanged_similarity__hand_computed() -> None:
    # T = 3: pixel 0 logits (3, 0) vs (0, 3): softmax (e, 1)/(e+1) vs (1, e)/(e+1), cos = 2e / (e^2 + 1);
    # pixel 1 identical -> cos 1; pixel 2 changed, pixel 3 ignored: both count 0 in a mean over 4 pixels.
    a = _logits((3.0, 0.0), (1.0, 2.0), (3.0, 0.0), (3.0, 0.0))
    b = _logits((0.0, 3.0), (1.0, 2.0), (0.0, 3.0), (0.0, 3.0))
    target = torch.tensor([[[0, 0, 1, 255]]])
    cos = 2 * math.e / (math.e**2 + 1)
    assert float(unchanged_similarity(a, b, target)) == pytest.approx((1 - cos) / 4, rel=1e-5)


def test_unchanged_similarity__equals_cosine_embedding_loss() -> None:
    """The authors' form: CosineEmbeddingLoss(margin=0) on softmax(x/3) with target 1 unchanged, 0 else."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 2, 6, 5, generator=g), torch.randn(2, 2, 6, 5, generator=g)
    target = torch.randint(0, 2, (2, 6, 5), generator=g)
    target[0, 0, :2] = 255
    x1 = torch.softmax(a / 3, dim=1).permute(0, 2, 3, 1).reshape(-1, 2)
    x2 = torch.softmax(b / 3, dim=1).permute(0, 2, 3, 1).reshape(-1, 2)
    reference = torch.nn.CosineEmbeddingLoss(margin=0.0)(x1, x2, (target == 0).float().reshape(-1))
    assert float(unchanged_similarity(a, b, target)) == pytest.approx(float(reference), rel=1e-5)


def test_cach_loss__weights_combine_the_terms() -> None:
    g = torch.Generator().manual_seed(1)
    outs = CACHOutputs(*(torch.randn(2, 2, 4, 4, generator=g) for _ in range(6)))
    target = torch.randint(0, 2, (2, 4, 4), generator=g)
    terms = cach_loss(outs, target)
    ce = torch.nn.CrossEntropyLoss(ignore_index=255)
    assert float(terms.main) == pytest.approx(float(ce(outs.change, target)), rel=1e-6)
    side = ce(outs.side1, target) + ce(outs.side2, target) + ce(outs.side3, target)
    assert float(terms.side) == pytest.approx(float(side), rel=1e-6)
    sim = unchanged_similarity(outs.single_t1, outs.single_t2, target)
    assert float(terms.total) == pytest.approx(float(0.8 * terms.main + 0.1 * side + 0.1 * sim), rel=1e-6)
    alone = cach_loss(outs, target, weights=LossWeights(main=1.0, side=0.0, similarity=0.0))
    assert float(alone.total) == pytest.approx(float(terms.main), rel=1e-6)
