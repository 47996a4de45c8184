"""The instance overlap gate of Inst-CEG and DynamicEarth I-M-C (DynamicEarth's ``instance_ceg``).

With the instances of the target classes at both dates, an instance of t1 is changed
when the sum of its mask IoUs with all instances of t2 is at most ``gate`` (0.01), and
symmetrically for t2. When one date has no instance, every instance of the other is
changed. So an object that appeared or vanished is caught; one that grew, shrank or was
rebuilt on its footprint overlaps its former self and is not (the method's known limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence, owner_weight, require
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, mask_iou, paint
from s2c_batch.kernels.comparators.options import InstCEGOptions


def overlap_gate(masks_t1: torch.Tensor, masks_t2: torch.Tensor, gate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Which instances of each date have (almost) no counterpart at the other.

    Args:
        masks_t1: bool ``[n1, H, W]``: the instances of t1.
        masks_t2: bool ``[n2, H, W]``: of t2.
        gate: largest IoU sum of a changed instance.

    Returns:
        bool ``([n1], [n2])``: changed instances of t1, of t2.
    """
    iou = mask_iou(masks_t1, masks_t2)  # [n1, n2]; all zero when a date has no instance
    return iou.sum(dim=1) <= gate, iou.sum(dim=0) <= gate


def inst_ceg(evidence: TileEvidence, *, gate: float) -> TileDecision:
    """Inst-CEG on one tile pair: the changed instances of both dates, probability 1 (a decision only).

    Args:
        evidence: with ``instances``.
        gate: largest IoU sum of a changed instance.

    Returns:
        The decision.
    """
    m1, m2 = require(evidence.instances, "identifier instances")
    g1, g2 = overlap_gate(m1.masks, m2.masks, gate)
    hits = MaskSet.cat([m1.select(g1), m2.select(g2)])
    ones = torch.ones(len(hits), device=hits.masks.device)
    return TileDecision(prob=paint(hits.masks, ones, evidence.size),
                        weight=owner_weight(torch.cat([m1.masks, m2.masks]), evidence.core), changed=hits)


@dataclass(frozen=True)
class InstCEG(MaskComparator):
    """``model.comparator: inst_ceg``: the identifier's target instances and the overlap gate.

    Attributes:
        inst_ceg: the ``inst_ceg`` section.
    """

    name: ClassVar[str] = "inst_ceg"

    inst_ceg: InstCEGOptions = field(default_factory=InstCEGOptions)

    def uses_instances(self, identifier: bool) -> bool:
        """Always the identifier's instances."""
        return True

    def sections(self) -> tuple[str, ...]:
        """``inst_ceg`` alone (no proposals)."""
        return ("inst_ceg",)

    def decide(self, evidence: TileEvidence) -> TileDecision:
        """:func:`inst_ceg` with the gate."""
        return inst_ceg(evidence, gate=self.inst_ceg.gate)
