"""AnyChange (Zheng et al., NeurIPS 2024): bitemporal latent matching of the masks of both dates.

As ``torchange``'s ``AnyChange.forward`` in automatic mode, per tile:

1. the masks of t1 and of t2: class-agnostic proposals (``amg``), or with an identifier
   its instances of the target classes (the paper's AnyChange*); masks covering
   ``amg.max_area`` (0.8) of the tile or more are dropped;
2. every mask of either date gets its change confidence ``c = -cos(mean F1, mean F2)``
   (:mod:`~s2c_batch.kernels.comparators.mask_level.latent_match`); changed when ``c > cos(theta)``;
3. the changed masks of both dates together: box NMS (``amg.box_nms_thresh``, ranked by
   the mask's score), then at most ``anychange.max_changes`` by confidence.

The tile's probability is the largest mapped confidence of the masks covering a pixel
(every mask but those NMS dropped), so ``p > 0.5`` is the union of the changed masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence, owner_weight, require
from s2c_batch.kernels.comparators.mask_level.latent_match import change_confidence, changed, confidence_probability
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, areas, box_nms, paint
from s2c_batch.kernels.comparators.options import AnyChangeOptions


def anychange(evidence: TileEvidence, *, theta: float, nms_thresh: float, max_area: float,
              max_changes: int) -> TileDecision:
    """AnyChange's decision on one tile pair.

    Args:
        evidence: with ``features`` and either ``instances`` or ``proposals``.
        theta: matching angle in degrees.
        nms_thresh: box IoU of the NMS between the changed masks of both dates.
        max_area: masks covering this fraction of the tile or more are dropped.
        max_changes: changed masks kept at most.

    Returns:
        The decision.
    """
    f1, f2 = require(evidence.features, "latent matching features")
    sets = evidence.instances if evidence.instances is not None else require(evidence.proposals, "masks")
    pixels = evidence.size[0] * evidence.size[1]
    both = MaskSet.cat([s.select(areas(s.masks).double() / pixels < max_area) for s in sets])
    conf = change_confidence(f1, f2, both.masks)
    prob = confidence_probability(conf, theta)
    hit = torch.nonzero(changed(conf, theta)).flatten()
    kept = hit[box_nms(both.masks[hit], both.scores[hit], nms_thresh)]
    if len(kept) > max_changes:
        kept = kept[torch.argsort(conf[kept], descending=True, stable=True)[:max_changes]]
    shown = torch.ones(len(both), dtype=torch.bool, device=conf.device)
    shown[hit] = False
    shown[kept] = True
    return TileDecision(prob=paint(both.masks[shown], prob[shown], evidence.size),
                        weight=owner_weight(both.masks, evidence.core), changed=both.select(kept))


@dataclass(frozen=True)
class AnyChange(MaskComparator):
    """``model.comparator: anychange``: proposals (or, with an identifier, its instances), latent matching.

    Attributes:
        anychange: the ``anychange`` section.
    """

    name: ClassVar[str] = "anychange"
    release_offset: ClassVar[float | None] = 1.0

    anychange: AnyChangeOptions = field(default_factory=AnyChangeOptions)

    def uses_instances(self, identifier: bool) -> bool:
        """AnyChange* with an identifier: its target instances."""
        return identifier

    def uses_proposals(self, identifier: bool) -> bool:
        """Without an identifier: class-agnostic proposals."""
        return not identifier

    @property
    def features(self) -> Literal["sam", "dinov2"]:
        """``anychange.features``."""
        return self.anychange.features

    def sections(self) -> tuple[str, ...]:
        """``amg`` and ``anychange``."""
        return ("amg", "anychange")

    def decide(self, evidence: TileEvidence) -> TileDecision:
        """:func:`anychange` with the options."""
        o = self.anychange
        return anychange(evidence, theta=o.theta, nms_thresh=self.amg.box_nms_thresh, max_area=self.amg.max_area,
                         max_changes=o.max_changes)
