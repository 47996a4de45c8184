"""Binary object masks of one tile: the sets the mask-level comparators decide on, and their maths.

A :class:`MaskSet` holds the masks of one date of one tile (identifier instances or
class-agnostic proposals) with a score each. The functions here are what AnyChange,
Inst-CEG, DynamicEarth and UCD-SCM share: boxes and box NMS (as SAM's automatic mask
generator), mask IoU, per-mask means of a feature or score map, centroids, and painting
per-mask values into a tile.

Feature maps are coarser than the tile (a token grid). The releases upsample them to
the tile bilinearly (``align_corners=True``) and average over each mask's pixels;
:func:`mask_means` gives the same means without building the upsampled map: bilinear
interpolation is linear and separable, ``up(F) = A F B^T`` per channel, so the mean of
``up(F)`` over a mask ``m`` is ``sum(F * (A^T m B)) / |m|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Masks painted, averaged or compared at once (memory: this many ``[H, W]`` float maps).
CHUNK = 64


@dataclass(frozen=True)
class MaskSet:
    """Masks of one tile at one date.

    Attributes:
        masks: bool ``[n, H, W]``.
        scores: float32 ``[n]``: the identifier's query probability, or a proposal's
            predicted IoU (what NMS ranks by).
    """

    masks: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @classmethod
    def empty(cls, size: Sequence[int], device: torch.device | str = "cpu") -> MaskSet:
        """No mask over a tile of ``size`` ``(H, W)``."""
        return cls(torch.zeros((0, *size), dtype=torch.bool, device=device),
                   torch.zeros(0, dtype=torch.float32, device=device))

    def select(self, keep: torch.Tensor) -> MaskSet:
        """The masks where ``keep`` (bool ``[n]`` or int64 indexes) says."""
        return MaskSet(self.masks[keep], self.scores[keep])

    @staticmethod
    def cat(sets: Sequence[MaskSet]) -> MaskSet:
        """All masks of ``sets``, in order (at least one set)."""
        return MaskSet(torch.cat([s.masks for s in sets]), torch.cat([s.scores for s in sets]))


def count(masks: torch.Tensor) -> torch.Tensor:
    """True pixels of each mask: int32 ``[n]`` from bool ``[n, ...]`` (bytes summed: 3-5x faster than bools)."""
    flat = masks.reshape(masks.shape[0], int(np.prod(masks.shape[1:])))
    return flat.view(torch.uint8).sum(dim=1, dtype=torch.int32)


def areas(masks: torch.Tensor) -> torch.Tensor:
    """Pixels of each mask: int64 ``[n]`` from bool ``[n, H, W]``."""
    return count(masks).long()


def boxes(masks: torch.Tensor) -> torch.Tensor:
    """Bounding boxes ``[n, 4]`` float ``(x0, y0, x1, y1)``, max coordinates inclusive (SAM's convention).

    Empty masks get ``(0, 0, 0, 0)``.
    """
    n, height, width = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # [n, H], [n, W]
    r = torch.arange(height, device=masks.device)
    c = torch.arange(width, device=masks.device)
    big = max(height, width)
    out = torch.stack([torch.where(cols, c, big).amin(dim=1), torch.where(rows, r, big).amin(dim=1),
                       torch.where(cols, c, -1).amax(dim=1), torch.where(rows, r, -1).amax(dim=1)], dim=1)
    return torch.where(rows.any(dim=1)[:, None], out, 0).float()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``[n, 4]`` and ``[m, 4]`` ``(x0, y0, x1, y1)``: ``[n, m]`` (areas without +1, as torchvision)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def box_nms(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Box non-maximum suppression of masks, ranked by ``scores`` (SAM's ``batched_nms``, one category).

    Greedy, as torchvision's ``nms`` (not used: the package must run where torch alone is installed).

    Args:
        masks: bool ``[n, H, W]``.
        scores: float ``[n]``.
        iou_threshold: a mask whose box overlaps a higher-scored kept one by more is dropped.

    Returns:
        int64 indexes of the kept masks, highest score first.
    """
    if masks.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=masks.device)
    order = torch.argsort(scores.float(), descending=True, stable=True)
    b = boxes(masks)[order]
    over = (box_iou(b, b) > iou_threshold).cpu().numpy()  # greedy on the host: one copy, no sync per mask
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask of ``a`` with every mask of ``b``.

    Args:
        a: bool ``[n, H, W]``.
        b: bool ``[m, H, W]``.

    Returns:
        float32 ``[n, m]`` (0 where both are empty).
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros((a.shape[0], b.shape[0]), dtype=torch.float32, device=a.device)
    inter = torch.zeros((a.shape[0], b.shape[0]), dtype=torch.float64, device=a.device)
    bf = b.flatten(1).to(torch.float32)
    for s in range(0, a.shape[0], CHUNK):
        inter[s : s + CHUNK] = (a[s : s + CHUNK].flatten(1).to(torch.float32) @ bf.T).double()
    union = areas(a)[:, None].double() + areas(b)[None, :].double() - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter)).float()


def interpolation_matrix(n_in: int, n_out: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """The matrix of 1-D linear interpolation with ``align_corners=True``: ``out = M @ in``.

    Returns:
        float32 ``[n_out, n_in]``.

    Example:
        >>> interpolation_matrix(2, 3).tolist()
        [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    eye = torch.eye(n_in, dtype=torch.float32, device=device)[None]  # [1, n_in (channels), n_in]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=True)[0].T.contiguous()


def mask_means(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean of the features, upsampled to the masks' size (bilinear, ``align_corners=True``), over each mask.

    Args:
        features: float ``[C, h, w]`` (a token grid, or already ``[C, H, W]``).
        masks: bool ``[n, H, W]``.

    Returns:
        float32 ``[n, C]``; zeros for an empty mask.
    """
    n, height, width = masks.shape
    c, h, w = features.shape
    if n == 0:
        return torch.zeros((0, c), dtype=torch.float32, device=features.device)
    feats = features.float().reshape(c, h * w)
    out = torch.empty((n, c), dtype=torch.float32, device=features.device)
    rows = interpolation_matrix(h, height, device=masks.device) if h != height else None  # [H, h]
    cols = interpolation_matrix(w, width, device=masks.device) if w != width else None  # [W, w]
    for s in range(0, n, CHUNK):
        m = masks[s : s + CHUNK].to(torch.float32)
        count = m.flatten(1).sum(dim=1).clamp(min=1)
        if rows is not None:
            m = torch.einsum("nHW,Hh->nhW", m, rows)
        if cols is not None:
            m = torch.einsum("nhW,Ww->nhw", m, cols)
        out[s : s + CHUNK] = (m.reshape(m.shape[0], h * w) @ feats.T) / count[:, None]
    return out


def centroids(masks: torch.Tensor) -> torch.Tensor:
    """Centre of mass ``(row, col)`` of each mask, in pixels: float32 ``[n, 2]`` (NaN for an empty mask)."""
    n, height, width = masks.shape
    m = masks.to(torch.float32)
    count = m.flatten(1).sum(dim=1)
    rows = torch.arange(height, dtype=torch.float32, device=masks.device)
    cols = torch.arange(width, dtype=torch.float32, device=masks.device)
    r = (m.sum(dim=2) * rows).sum(dim=1) / count
    c = (m.sum(dim=1) * cols).sum(dim=1) / count
    return torch.stack([r, c], dim=1)


def owned(masks: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
    """Which masks the tile owns: those whose centroid's pixel lies in the tile's core.

    Args:
        masks: bool ``[n, H, W]``.
        core: bool ``[H, W]``: the pixels nearer this tile than any other of the grid
            (:func:`~s2c_batch.kernels.raster.tiling.tile_core`).

    Returns:
        bool ``[n]`` (False for empty masks).
    """
    if masks.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=masks.device)
    cen = centroids(masks)
    ok = torch.isfinite(cen).all(dim=1)
    idx = torch.nan_to_num(cen, nan=0.0).floor().long()
    idx[:, 0].clamp_(0, masks.shape[1] - 1)
    idx[:, 1].clamp_(0, masks.shape[2] - 1)
    return ok & core[idx[:, 0], idx[:, 1]]


def paint(masks: torch.Tensor, values: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
    """The largest value of the masks covering each pixel, 0 where none does.

    Args:
        masks: bool ``[n, H, W]``.
        values: float ``[n]`` (>= 0).
        size: ``(H, W)`` when there may be no mask.

    Returns:
        float32 ``[H, W]``.
    """
    shape = tuple(masks.shape[1:]) if size is None else tuple(size)
    out = torch.zeros(shape, dtype=torch.float32, device=masks.device)
    for s in range(0, masks.shape[0], CHUNK):
        chunk = masks[s : s + CHUNK].to(torch.float32) * values[s : s + CHUNK].float()[:, None, None]
        out = torch.maximum(out, chunk.amax(dim=0))
    return out
