"""The mask-level comparators of the paper's Tables 1 and 2, as one configured object.

``model.comparator`` ``anychange``, ``inst_ceg``, ``dynamicearth`` (``mode: imc | mci``) or
``ucd_scm``. A :class:`MaskComparator` holds the method and its options (the config
sections ``amg``, ``anychange``, ``inst_ceg``, ``dynamicearth``, ``ucd_scm``); it travels
with every tile task (``TileJob.comparator``), says which model outputs its decision
needs, and decides each tile (:meth:`MaskComparator.decide`). The worker's
:class:`~s2c_batch.kernels.predictors.masks.MaskChangePredictor` gathers the outputs.

Where the masks come from:

- identifier instances of the target classes: ``inst_ceg``, ``dynamicearth`` I-M-C, and
  ``anychange`` with ``model.identifier: segearth_ov3`` (the paper's AnyChange*);
- class-agnostic proposals (``amg``, on SAM 3's tracker head or original SAM):
  ``anychange`` without identifier, ``dynamicearth`` M-C-I, ``ucd_scm``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from s2c_batch.kernels.comparators.mask_level.amg import MaskGeneratorSettings
from s2c_batch.kernels.comparators.mask_level.anychange import anychange
from s2c_batch.kernels.comparators.mask_level.dynamicearth import imc, mci
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence
from s2c_batch.kernels.comparators.mask_level.inst_ceg import inst_ceg
from s2c_batch.kernels.comparators.mask_level.ucd_scm import ucd_scm
from s2c_batch.kernels.comparators.options import (
    AMGOptions,
    AnyChangeOptions,
    DynamicEarthOptions,
    InstCEGOptions,
    UCDSCMOptions,
)

#: The releases' stability score offsets: AnyChange's generator, DynamicEarth's (SAM), SAM's default.
RELEASE_OFFSET = {"anychange": 1.0, "dynamicearth": 0.9, "ucd_scm": 1.0}


@dataclass(frozen=True)
class MaskComparator:
    """A mask-level comparator with its options.

    Attributes:
        name: ``anychange``, ``inst_ceg``, ``dynamicearth`` or ``ucd_scm``.
        amg: the proposal generator's options.
        anychange: AnyChange's.
        inst_ceg: Inst-CEG's.
        dynamicearth: DynamicEarth's.
        ucd_scm: UCD-SCM's.
    """

    name: Literal["anychange", "inst_ceg", "dynamicearth", "ucd_scm"]
    amg: AMGOptions = field(default_factory=AMGOptions)
    anychange: AnyChangeOptions = field(default_factory=AnyChangeOptions)
    inst_ceg: InstCEGOptions = field(default_factory=InstCEGOptions)
    dynamicearth: DynamicEarthOptions = field(default_factory=DynamicEarthOptions)
    ucd_scm: UCDSCMOptions = field(default_factory=UCDSCMOptions)

    def uses_instances(self, identifier: bool) -> bool:
        """Whether the masks are the identifier's instances (with ``identifier`` running)."""
        if self.name == "anychange":
            return identifier
        return self.name == "inst_ceg" or (self.name == "dynamicearth" and self.dynamicearth.mode == "imc")

    def uses_proposals(self, identifier: bool) -> bool:
        """Whether the masks are class-agnostic proposals (needs SAM 3's tracker head or SAM)."""
        if self.name == "anychange":
            return not identifier
        return self.name == "ucd_scm" or (self.name == "dynamicearth" and self.dynamicearth.mode == "mci")

    @property
    def features(self) -> Literal["sam", "dinov2"] | None:
        """The features of latent matching: the masks' SAM embedding, the last DINOv2 tap, or none."""
        if self.name == "anychange":
            return self.anychange.features
        if self.name == "dynamicearth":
            return "dinov2"
        return None

    @property
    def uses_class_scores(self) -> bool:
        """Whether the decision reads the identifier's class scores (M-C-I, UCD-SCM)."""
        return self.name == "ucd_scm" or (self.name == "dynamicearth" and self.dynamicearth.mode == "mci")

    @property
    def uses_levels(self) -> bool:
        """Whether the decision reads SAM 3's multi-level features (UCD-SCM)."""
        return self.name == "ucd_scm"

    def generator(self) -> MaskGeneratorSettings:
        """The proposal generator's settings, the stability offset resolved to the release's."""
        a = self.amg
        offset = a.stability_score_offset if a.stability_score_offset is not None else RELEASE_OFFSET[self.name]
        return MaskGeneratorSettings(
            points_per_side=a.points_per_side, points_per_batch=a.points_per_batch,
            pred_iou_thresh=a.pred_iou_thresh, stability_score_thresh=a.stability_score_thresh,
            stability_score_offset=offset, box_nms_thresh=a.box_nms_thresh, max_area=a.max_area,
        )

    def decide(self, evidence: TileEvidence) -> TileDecision:
        """The method's decision on one tile pair."""
        if self.name == "anychange":
            o = self.anychange
            return anychange(evidence, theta=o.theta, nms_thresh=self.amg.box_nms_thresh, max_area=self.amg.max_area,
                             max_changes=o.max_changes)
        if self.name == "inst_ceg":
            return inst_ceg(evidence, gate=self.inst_ceg.gate)
        if self.name == "dynamicearth":
            d = self.dynamicearth
            if d.mode == "imc":
                return imc(evidence, theta=d.angle, gate=d.gate)
            return mci(evidence, theta=d.angle, nms_thresh=self.amg.box_nms_thresh,
                       instance_targets=d.instance_targets)
        return ucd_scm(evidence, min_mask_area=self.ucd_scm.min_mask_area, channels=self.ucd_scm.channels)

    def to_json(self) -> dict[str, Any]:
        """The method and the options it reads, as plain JSON data."""
        own = {"anychange": ["amg", "anychange"], "inst_ceg": ["inst_ceg"], "ucd_scm": ["amg", "ucd_scm"],
               "dynamicearth": ["amg", "dynamicearth"] if self.dynamicearth.mode == "mci" else ["dynamicearth"]}
        return {"comparator": self.name, **{k: asdict(getattr(self, k)) for k in own[self.name]}}
