"""The training loss of CACH, as in the authors' recipe (pure torch).

The head is trained with a two-class cross-entropy (``ignore_index`` 255) on the
main output and on the three side outputs, plus an *unchanged similarity* term
that pulls the single-date outputs of t1 and t2 together where nothing changed::

    loss = 0.8 * CE(change) + 0.1 * (CE(side1) + CE(side2) + CE(side3)) + 0.1 * L_sim

    L_sim = mean over all pixels of (1 - cos(softmax(a / T), softmax(b / T))) * [y == 0]

with ``a``, ``b`` the t1-only and t2-only logits, ``T = 3`` and ``y`` the label
(0 unchanged, 1 changed, 255 ignored). The authors compute ``L_sim`` with
``CosineEmbeddingLoss(margin=0)`` and a target of 1 on unchanged pixels and 0
elsewhere; a target of 0 contributes nothing but still counts in the mean, so
changed and ignored pixels dilute the term. We compute the same value directly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from s2c_batch.kernels.models.cach.head import CACHOutputs

#: Label value excluded from the cross-entropy.
IGNORE_INDEX: int = 255
#: Softmax temperature of the unchanged-similarity term.
SIMILARITY_TEMPERATURE: float = 3.0


class LossWeights(NamedTuple):
    """Weights of the three terms (the authors' alpha, beta, nu).

    Attributes:
        main: weight of the main head's cross-entropy.
        side: weight of the *sum* of the three side heads' cross-entropies.
        similarity: weight of the unchanged-similarity term.
    """

    main: float = 0.8
    side: float = 0.1
    similarity: float = 0.1


class LossTerms(NamedTuple):
    """The total loss and its unweighted parts (scalars).

    Attributes:
        total: the weighted sum that is back-propagated.
        main: cross-entropy of the main head.
        side: sum of the three side heads' cross-entropies.
        similarity: the unchanged-similarity term.
    """

    total: torch.Tensor
    main: torch.Tensor
    side: torch.Tensor
    similarity: torch.Tensor


def change_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    Args:
        logits: ``[B, 2, H, W]``.
        target: int64 ``[B, H, W]`` with 0, 1 or ``ignore_index``.
        ignore_index: label left out of the mean.

    Returns:
        A scalar; 0 (with a gradient of 0) when every pixel is ignored, where
        ``torch.nn.CrossEntropyLoss`` would give ``nan``.

    Example:
        >>> logits = torch.zeros(1, 2, 1, 2)
        >>> round(float(change_cross_entropy(logits, torch.tensor([[[0, 255]]]))), 4)
        0.6931
    """
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def unchanged_similarity(
    logits_t1: torch.Tensor,
    logits_t2: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float = SIMILARITY_TEMPERATURE,
) -> torch.Tensor:
    """The authors' unchanged-similarity term.

    Args:
        logits_t1: t1-only logits ``[B, C, H, W]``.
        logits_t2: t2-only logits ``[B, C, H, W]``.
        target: ``[B, H, W]`` labels; only the value 0 (unchanged) counts.
        temperature: softmax temperature ``T``.

    Returns:
        Scalar ``mean((1 - cos(softmax(a/T), softmax(b/T))) * (target == 0))``,
        the mean taken over all ``B * H * W`` pixels.

    Example:
        >>> a = torch.tensor([[[[3.0]], [[0.0]]]]); b = torch.tensor([[[[0.0]], [[3.0]]]])
        >>> round(float(unchanged_similarity(a, b, torch.zeros(1, 1, 1, dtype=torch.long))), 4)
        0.3519
    """
    p1 = torch.softmax(logits_t1 / temperature, dim=1)
    p2 = torch.softmax(logits_t2 / temperature, dim=1)
    cos = F.cosine_similarity(p1, p2, dim=1, eps=1e-12)
    unchanged = (target == 0).to(cos.dtype)
    return ((1.0 - cos) * unchanged).mean()


def cach_loss(outputs: CACHOutputs, target: torch.Tensor, *, weights: LossWeights | None = None) -> LossTerms:
    """The full training loss of CACH.

    Args:
        outputs: the head's outputs with ``return_aux=True``, each ``[B, 2, H, W]``.
        target: int64 ``[B, H, W]``: 0 unchanged, 1 changed, 255 ignored.
        weights: the term weights (default: the authors' 0.8 / 0.1 / 0.1).

    Returns:
        The total and the unweighted terms.
    """
    weights = weights if weights is not None else LossWeights()
    main = change_cross_entropy(outputs.change, target)
    side = sum(
        (change_cross_entropy(s, target) for s in (outputs.side1, outputs.side2, outputs.side3)),
        start=torch.zeros((), device=target.device),
    )
    sim = unchanged_similarity(outputs.single_t1, outputs.single_t2, target)
    total = weights.main * main + weights.side * side + weights.similarity * sim
    return LossTerms(total=total, main=main, side=side, similarity=sim)
