"""SegEarth-OV3 fusion of SAM 3 outputs into class scores and a label map (pure tensor functions).

Per (image, prompt), with ``p_i = sigmoid(pred_logits_i) * sigmoid(presence)``::

    S = max(0, max_{i: p_i > confidence_threshold} sigmoid(up(pred_masks_i)) * p_i)   instance head
    S = max(S, sigmoid(up(semantic_seg)))                                          semantic head
    S = S * sigmoid(presence)                                                      presence filter

``up`` resizes bilinearly (``align_corners=False``) to the output size. A class
scores the max of its synonyms' ``S``; the label is the argmax, and pixels whose
best score is below ``prob_thd`` get the background index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _up(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def prompt_scores(
    pred_masks: torch.Tensor,
    pred_logits: torch.Tensor,
    presence_logits: torch.Tensor,
    semantic_seg: torch.Tensor,
    *,
    size: Sequence[int],
    confidence_threshold: float,
    query_chunk: int = 8,
) -> torch.Tensor:
    """Fused score of M (image, prompt) pairs.

    Only the queries above the threshold are upsampled (the top-k by score,
    ``k`` = the most kept in any pair; one host sync per call), in chunks of
    ``query_chunk`` so that memory stays ``O(M * query_chunk * H * W)``.

    Args:
        pred_masks: instance mask logits ``[M, Q, h, w]``.
        pred_logits: query logits ``[M, Q]``.
        presence_logits: presence logit ``[M]`` or ``[M, 1]``.
        semantic_seg: semantic logits ``[M, 1, h, w]``.
        size: output ``(H, W)``.
        confidence_threshold: a query counts when ``p_i`` exceeds it.
        query_chunk: queries upsampled at once.

    Returns:
        float32 ``[M, H, W]`` in [0, 1].
    """
    presence = torch.sigmoid(presence_logits.float().reshape(-1))  # [M]
    prob = torch.sigmoid(pred_logits.float()) * presence[:, None]  # [M, Q]
    prob = torch.where(prob > confidence_threshold, prob, torch.zeros_like(prob))
    score = torch.sigmoid(_up(semantic_seg.float(), size))[:, 0]  # [M, H, W]
    k = int((prob > 0).sum(dim=1).max()) if prob.numel() else 0
    if k:
        top, index = prob.topk(k, dim=1)  # [M, k]
        m = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None]
        kept = pred_masks[m, index]  # [M, k, h, w]
        for start in range(0, k, query_chunk):
            chunk = torch.sigmoid(_up(kept[:, start : start + query_chunk].float(), size))
            chunk = chunk * top[:, start : start + query_chunk, None, None]
            score = torch.maximum(score, chunk.amax(dim=1))
    return score * presence[:, None, None]


def class_scores(scores: torch.Tensor, prompt_class: Sequence[int], num_classes: int) -> torch.Tensor:
    """Max over the synonyms of each class.

    Args:
        scores: ``[B, P, H, W]`` prompt scores (non-negative).
        prompt_class: class of each of the P prompts.
        num_classes: K.

    Returns:
        ``[B, K, H, W]``; a class without prompts scores 0.

    Example:
        >>> s = torch.tensor([0.2, 0.7, 0.4]).view(1, 3, 1, 1)
        >>> class_scores(s, [0, 1, 1], 3).flatten().tolist()
        [0.20000000298023224, 0.699999988079071, 0.0]
    """
    if len(prompt_class) != scores.shape[1]:
        raise ValueError(f"{len(prompt_class)} prompt classes for {scores.shape[1]} prompt scores")
    b, _, h, w = scores.shape
    out = scores.new_zeros((b, num_classes, h, w))
    for k in range(num_classes):
        members = [i for i, c in enumerate(prompt_class) if c == k]
        if len(members) == 1:
            out[:, k] = scores[:, members[0]]
        elif members:
            out[:, k] = scores[:, members].amax(dim=1)
    return out


def label_map(scores: torch.Tensor, *, prob_thd: float, background: int = 0) -> torch.Tensor:
    """Argmax over classes, ``background`` where the best score is below ``prob_thd``.

    Args:
        scores: ``[B, K, H, W]`` class scores.
        prob_thd: minimum best score for a class to be kept.
        background: index of the background class.

    Returns:
        int64 ``[B, H, W]``.

    Example:
        >>> s = torch.tensor([[[[0.05]], [[0.09]]], [[[0.2]], [[0.6]]]])  # B=2, K=2, 1x1
        >>> label_map(s, prob_thd=0.1).flatten().tolist()
        [0, 1]
    """
    best, labels = scores.max(dim=1)
    return torch.where(best < prob_thd, torch.full_like(labels, background), labels)
