"""DynamicEarth (Li et al., 2025): its two training-free pipelines on our identifier and DINOv2.

**I-M-C** (identify, mask, compare; the paper's DynamicEarth*): the identifier's instances
of the target classes at both dates, the overlap gate of
:func:`~s2c_batch.kernels.comparators.mask_level.inst_ceg.overlap_gate`, then latent matching on the
DINOv2 features of the survivors (theta 135 for building sets in the release).

**M-C-I** (mask, compare, identify): class-agnostic proposals of each date (``amg``),
together box-NMS'd across the dates (``amg.box_nms_thresh``, ranked by predicted IoU),
latent matching on DINOv2 (theta 145), then each surviving mask's class at t1 and at t2:
the argmax of the identifier's class scores averaged over the mask (background when the
best is below ``model.prob_thd``). A mask is kept when its two classes differ and, for
instance-like targets (``instance_targets``, the release's ``is_instance_class``), the
class at the mask's own date is a target; otherwise when one of the two is a target
(the release's prompt lists hold only the target and background, where "differ" says it).

The tile's probability is the mapped confidence of the masks the gate or the class rule
keeps (0 elsewhere), so ``p > 0.5`` is the union of the kept masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence, owner_weight, require
from s2c_batch.kernels.comparators.mask_level.inst_ceg import overlap_gate
from s2c_batch.kernels.comparators.mask_level.latent_match import change_confidence, changed, confidence_probability
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, box_nms, mask_means, paint
from s2c_batch.kernels.comparators.options import DynamicEarthOptions


def imc(evidence: TileEvidence, *, theta: float, gate: float) -> TileDecision:
    """DynamicEarth I-M-C on one tile pair (needs ``instances`` and ``features``)."""
    f1, f2 = require(evidence.features, "DINOv2 features")
    m1, m2 = require(evidence.instances, "identifier instances")
    g1, g2 = overlap_gate(m1.masks, m2.masks, gate)
    survivors = MaskSet.cat([m1.select(g1), m2.select(g2)])
    conf = change_confidence(f1, f2, survivors.masks)
    every = torch.cat([m1.masks, m2.masks])
    return TileDecision(prob=paint(survivors.masks, confidence_probability(conf, theta), evidence.size),
                        weight=owner_weight(every, evidence.core), changed=survivors.select(changed(conf, theta)))


def mask_classes(scores: torch.Tensor, masks: torch.Tensor, *, prob_thd: float, background: int) -> torch.Tensor:
    """The class of each mask: argmax of the class scores averaged over it.

    Args:
        scores: float ``[K, H, W]``.
        masks: bool ``[n, H, W]``.
        prob_thd: best mean score below which the mask is ``background``.
        background: the background index.

    Returns:
        int64 ``[n]``.
    """
    means = mask_means(scores, masks)  # [n, K]
    if not len(means):
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    best, label = means.max(dim=1)
    return torch.where(best < prob_thd, torch.full_like(label, background), label)


def mci(evidence: TileEvidence, *, theta: float, nms_thresh: float, instance_targets: bool) -> TileDecision:
    """DynamicEarth M-C-I on one tile pair (needs ``proposals``, ``features`` and ``class_scores``)."""
    f1, f2 = require(evidence.features, "DINOv2 features")
    p1, p2 = require(evidence.proposals, "mask proposals")
    s1, s2 = require(evidence.class_scores, "class scores")
    both = MaskSet.cat([p1, p2])
    date = torch.cat([torch.ones(len(p1), dtype=torch.int64), torch.full((len(p2),), 2, dtype=torch.int64)])
    keep = box_nms(both.masks, both.scores, nms_thresh)
    both, date = both.select(keep), date.to(keep.device)[keep]
    conf = change_confidence(f1, f2, both.masks)
    thd, bg = evidence.prob_thd, evidence.background
    c1 = mask_classes(s1, both.masks, prob_thd=thd, background=bg)
    c2 = mask_classes(s2, both.masks, prob_thd=thd, background=bg)
    targets = torch.tensor(evidence.targets, dtype=torch.int64, device=c1.device)
    t1, t2 = torch.isin(c1, targets), torch.isin(c2, targets)
    rule = c1 != c2
    rule &= torch.where(date == 1, t1, t2) if instance_targets else (t1 | t2)
    prob = confidence_probability(conf, theta)
    return TileDecision(prob=paint(both.masks[rule], prob[rule], evidence.size),
                        weight=owner_weight(both.masks, evidence.core),
                        changed=both.select(rule & changed(conf, theta)))


@dataclass(frozen=True)
class DynamicEarth(MaskComparator):
    """``model.comparator: dynamicearth``: I-M-C on the identifier's instances, or M-C-I on proposals.

    Attributes:
        dynamicearth: the ``dynamicearth`` section (``mode`` chooses I-M-C or M-C-I).
    """

    name: ClassVar[str] = "dynamicearth"
    release_offset: ClassVar[float | None] = 0.9

    dynamicearth: DynamicEarthOptions = field(default_factory=DynamicEarthOptions)

    def uses_instances(self, identifier: bool) -> bool:
        """I-M-C: the identifier's instances."""
        return self.dynamicearth.mode == "imc"

    def uses_proposals(self, identifier: bool) -> bool:
        """M-C-I: class-agnostic proposals."""
        return self.dynamicearth.mode == "mci"

    @property
    def features(self) -> Literal["dinov2"]:
        """Latent matching on the last DINOv2 tap."""
        return "dinov2"

    @property
    def uses_class_scores(self) -> bool:
        """M-C-I classes each mask at both dates."""
        return self.dynamicearth.mode == "mci"

    def sections(self) -> tuple[str, ...]:
        """``dynamicearth``, and ``amg`` for M-C-I's proposals."""
        return ("amg", "dynamicearth") if self.dynamicearth.mode == "mci" else ("dynamicearth",)

    def decide(self, evidence: TileEvidence) -> TileDecision:
        """:func:`imc` or :func:`mci` with the options."""
        d = self.dynamicearth
        if d.mode == "imc":
            return imc(evidence, theta=d.angle, gate=d.gate)
        return mci(evidence, theta=d.angle, nms_thresh=self.amg.box_nms_thresh, instance_targets=d.instance_targets)
