"""What a mask-level comparator sees of one tile pair, and what it returns.

The models run once per batch of tiles (:mod:`s2c_batch.kernels.predictors.masks`); each
comparator's decision rule then runs per tile on a :class:`TileEvidence`: the masks of
both dates (identifier instances and/or class-agnostic proposals), feature maps, class
scores. It returns a :class:`TileDecision`: the tile's change probability and its blend
*priority*.

Tiles overlap, and an object cut by a tile border would be decided differently by the
tiles that see it whole and in part: blending those gives a seam. So each mask is decided
by the tile that *owns* it, the tile whose core (the pixels nearer it than any other tile,
:func:`~s2c_batch.kernels.raster.tiling.tile_core`) holds its centroid: the owner paints
the mask's pixels with :data:`OWNER_WEIGHT` times its blend weight, which outweighs every
other tile there (its weight never falls below ~1.5e-4 at 128 px overlap, so the others
move the blended value by less than 1e-5). An object smaller than half the overlap whose
centroid lies in a tile's core lies wholly inside that tile, so the blended products equal
the whole-scene decision on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, owned, paint

T = TypeVar("T")

#: Blend priority of the pixels of the masks a tile owns (a multiplier of its blend weight).
OWNER_WEIGHT = float(2**30)


@dataclass(frozen=True)
class TileEvidence:
    """The inputs of a decision, for one tile pair; ``None`` where the comparator needs no such part.

    Attributes:
        size: ``(H, W)`` of the tile.
        core: bool ``[H, W]``: the tile's core (every pixel when the tile stands alone).
        instances: the identifier's instances of the target classes at t1 and t2.
        proposals: class-agnostic proposals at t1 and t2 (each NMS'd and area-filtered).
        features: feature maps of t1 and t2 for latent matching, each float ``[C, h, w]``.
        class_scores: the identifier's class scores of t1 and t2, each float ``[K, H, W]``.
        levels: multi-level feature maps of t1 and t2 (UCD-SCM), each a list of
            ``[C_l, h_l, w_l]``, finest first.
        targets: the target class indexes.
        prob_thd: best class score below which a pixel or mask is background.
        background: the background class index.
    """

    size: tuple[int, int]
    core: torch.Tensor
    instances: tuple[MaskSet, MaskSet] | None = None
    proposals: tuple[MaskSet, MaskSet] | None = None
    features: tuple[torch.Tensor, torch.Tensor] | None = None
    class_scores: tuple[torch.Tensor, torch.Tensor] | None = None
    levels: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None
    targets: tuple[int, ...] = ()
    prob_thd: float = 0.1
    background: int = 0


@dataclass(frozen=True)
class TileDecision:
    """A comparator's result on one tile pair.

    Attributes:
        prob: float32 ``[H, W]`` change probability (``p > 0.5`` = the method's decision
            for the mask-matching methods; UCD-SCM's is thresholded by Otsu).
        weight: float32 ``[H, W]`` blend priority: :data:`OWNER_WEIGHT` on the pixels of the
            masks this tile owns, 1 elsewhere.
        changed: the masks decided changed (for tests and inspection).
    """

    prob: torch.Tensor
    weight: torch.Tensor
    changed: MaskSet


def owner_weight(masks: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
    """:data:`OWNER_WEIGHT` on the pixels of the owned masks, 1 elsewhere.

    Args:
        masks: bool ``[n, H, W]``: every mask the tile decided on.
        core: bool ``[H, W]``: the tile's core.

    Returns:
        float32 ``[H, W]``.
    """
    mine = masks[owned(masks, core)]
    covered = paint(mine, torch.ones(len(mine), device=masks.device), core.shape) > 0
    return torch.where(covered, torch.tensor(OWNER_WEIGHT, device=masks.device),
                       torch.tensor(1.0, device=masks.device))


def require(part: T | None, what: str) -> T:
    """``part``, or a ValueError naming the missing evidence (a predictor bug, not user input)."""
    if part is None:
        raise ValueError(f"the tile evidence lacks {what}")
    return part
