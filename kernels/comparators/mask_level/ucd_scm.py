"""UCD-SCM, the Segment Change Model (Tan et al., IGARSS 2024), on SAM 3 features and masks.

The release runs FastSAM-X (a YOLOv8-seg model) for "everything" masks and four encoder
feature levels, and CLIP ViT-B/32 to score each mask as building. We ship neither (FastSAM
needs AGPL ultralytics code), so:

- **features**: the three coarsest of the four FPN levels of the identifier's SAM 3 vision
  pass (strides 7, 14, 28 at 1008 px; FastSAM's were 8, 16, 32), each 2x the next as there;
- **masks**: the class-agnostic proposals of ``amg`` on SAM 3's tracker head;
- **mask score** (piecewise semantic attention): the identifier's score of the target
  classes averaged over the mask, where the release took CLIP's probability of six
  building words for the mask's box.

Per tile, as the release per image:

1. RFF (recalibrated feature fusion): each level's channels multiplied by their spatial
   mean, every ``C // ucd_scm.channels``-th channel kept, fused top-down (``c2 += up(c3)``,
   ``c1 += up(c2)``, bilinear), the three maps concatenated and resized to the tile;
2. ``d = clip(1 - (cos + 1) / 2, 0, 1)``, the cosine between the two dates per pixel;
3. PSA: per date, each mask larger than ``ucd_scm.min_mask_area`` pixels gets its score,
   a pixel the largest score of its masks (0 outside all); ``s = max(s_t1, s_t2)``;
   weight ``1`` where ``s >= 0.5``, else ``2 s``;
4. ``p = d * weight``; the mask is Otsu's threshold over the whole scene
   (``model.threshold: otsu``), over the non-zero levels as the release pools only
   non-zero values (level 0 is left out of the histogram).

The release resized features to a fixed 1024 x 1024 and pooled Otsu over a folder of
images; here the tile size and the scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence, owner_weight, require
from s2c_batch.kernels.comparators.mask_level.masks import CHUNK, areas, mask_means, paint
from s2c_batch.kernels.comparators.options import UCDSCMOptions


def recalibrate(level: torch.Tensor, channels: int) -> torch.Tensor:
    """RFF's squeeze without excitation: channels times their spatial mean, then every ``C // channels``-th.

    Args:
        level: float ``[C, h, w]``.
        channels: channels wanted (the release: 160).

    Returns:
        float32 ``[ceil(C / step), h, w]``, ``step = max(1, C // channels)``.
    """
    x = level.float()
    x = x * x.mean(dim=(1, 2), keepdim=True)
    return x[:: max(1, x.shape[0] // channels)]


def fuse(levels: Sequence[torch.Tensor], channels: int) -> list[torch.Tensor]:
    """RFF's top-down fusion of three levels, finest first.

    Returns:
        ``[c3, c2 + up(c3), c1 + up(c2 + up(c3))]`` at their own resolutions, coarsest first.
    """
    if len(levels) != 3:
        raise ValueError(f"UCD-SCM fuses three feature levels, got {len(levels)}")
    c1, c2, c3 = (recalibrate(x, channels) for x in levels)
    p2 = c2 + _resize(c3, c2.shape[-2:])
    p1 = c1 + _resize(p2, c1.shape[-2:])
    return [c3, p2, p1]


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def cosine_distance(levels_t1: Sequence[torch.Tensor], levels_t2: Sequence[torch.Tensor], size: Sequence[int],
                    channels: int) -> torch.Tensor:
    """``clip(1 - (cos + 1) / 2, 0, 1)`` of the fused features of both dates at each pixel of the tile.

    The fused maps are resized to ``size`` a few channels at a time (the release held all
    480 channels at 1024 x 1024 at once).

    Returns:
        float32 ``[H, W]``.
    """
    dot = torch.zeros(tuple(size), dtype=torch.float32, device=levels_t1[0].device)
    n1 = torch.zeros_like(dot)
    n2 = torch.zeros_like(dot)
    for a, b in zip(fuse(levels_t1, channels), fuse(levels_t2, channels), strict=True):
        for s in range(0, a.shape[0], CHUNK // 2):
            x, y = _resize(a[s : s + CHUNK // 2], size), _resize(b[s : s + CHUNK // 2], size)
            dot += (x * y).sum(dim=0)
            n1 += (x * x).sum(dim=0)
            n2 += (y * y).sum(dim=0)
    cos = dot / (n1.sqrt() * n2.sqrt()).clamp(min=1e-12)
    return (1.0 - (cos * 0.5 + 0.5)).clamp(0.0, 1.0)


def psa_weight(score: torch.Tensor) -> torch.Tensor:
    """Piecewise semantic attention: 1 where ``score >= 0.5``, else ``2 * score``.

    Example:
        >>> psa_weight(torch.tensor([0.0, 0.2, 0.5, 0.9])).tolist()
        [0.0, 0.4000000059604645, 1.0, 1.0]
    """
    return torch.where(score >= 0.5, torch.ones_like(score), 2.0 * score)


def ucd_scm(evidence: TileEvidence, *, min_mask_area: int, channels: int) -> TileDecision:
    """UCD-SCM's weighted distance on one tile pair (needs ``levels``, ``proposals``, ``class_scores``).

    Args:
        evidence: the tile's evidence.
        min_mask_area: masks of at most this many pixels get no score.
        channels: channels kept per level.

    Returns:
        The decision (``changed`` is empty: the mask comes from the scene's Otsu threshold).
    """
    l1, l2 = require(evidence.levels, "feature levels")
    p1, p2 = require(evidence.proposals, "mask proposals")
    s1, s2 = require(evidence.class_scores, "class scores")
    distance = cosine_distance(l1, l2, evidence.size, channels)
    score = torch.zeros(evidence.size, dtype=torch.float32, device=distance.device)
    targets = list(evidence.targets)
    for masks, scores in ((p1, s1), (p2, s2)):
        big = masks.select(areas(masks.masks) > min_mask_area)
        target = scores[targets].amax(dim=0, keepdim=True) if targets else torch.zeros_like(scores[:1])
        score = torch.maximum(score, paint(big.masks, mask_means(target, big.masks)[:, 0], evidence.size))
    every = torch.cat([p1.masks, p2.masks])
    return TileDecision(prob=distance * psa_weight(score), weight=owner_weight(every, evidence.core),
                        changed=p1.select(torch.zeros(len(p1), dtype=torch.bool, device=distance.device)))


@dataclass(frozen=True)
class UCDSCM(MaskComparator):
    """``model.comparator: ucd_scm``: feature distance on SAM 3's levels, weighted by the proposals' target scores.

    Attributes:
        ucd_scm: the ``ucd_scm`` section.
    """

    name: ClassVar[str] = "ucd_scm"
    release_offset: ClassVar[float | None] = 1.0

    ucd_scm: UCDSCMOptions = field(default_factory=UCDSCMOptions)

    def uses_proposals(self, identifier: bool) -> bool:
        """Always class-agnostic proposals."""
        return True

    @property
    def uses_class_scores(self) -> bool:
        """Each proposal's target score."""
        return True

    @property
    def uses_levels(self) -> bool:
        """SAM 3's multi-level features."""
        return True

    def sections(self) -> tuple[str, ...]:
        """``amg`` and ``ucd_scm``."""
        return ("amg", "ucd_scm")

    def decide(self, evidence: TileEvidence) -> TileDecision:
        """:func:`ucd_scm` with the options."""
        return ucd_scm(evidence, min_mask_area=self.ucd_scm.min_mask_area, channels=self.ucd_scm.channels)
