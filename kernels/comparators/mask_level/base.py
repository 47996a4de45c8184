"""The mask-level comparators of the paper's Tables 1 and 2: what each one is, as a configured object.

``model.comparator`` ``anychange``, ``inst_ceg``, ``dynamicearth`` (``mode: imc | mci``) or
``ucd_scm``. A :class:`MaskComparator` holds its method's options (the config sections
``amg`` and the method's own); it travels with every tile task (``TileJob.comparator``),
says which model outputs its decision needs, and decides each tile (:meth:`MaskComparator.decide`).
Each method module defines its subclass (:class:`~.anychange.AnyChange`,
:class:`~.inst_ceg.InstCEG`, :class:`~.dynamicearth.DynamicEarth`, :class:`~.ucd_scm.UCDSCM`);
the comparator registry (:mod:`s2c_batch.kernels.comparators.registry`) builds them from a
config's options. The worker's :class:`~s2c_batch.kernels.predictors.masks.MaskChangePredictor`
gathers the outputs.

Where the masks come from:

- identifier instances of the target classes: ``inst_ceg``, ``dynamicearth`` I-M-C, and
  ``anychange`` with ``model.identifier: segearth_ov3`` (the paper's AnyChange*);
- class-agnostic proposals (``amg``, on SAM 3's tracker head or original SAM):
  ``anychange`` without identifier, ``dynamicearth`` M-C-I, ``ucd_scm``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from s2c_batch.kernels.comparators.mask_level.amg import MaskGeneratorSettings
from s2c_batch.kernels.comparators.mask_level.evidence import TileDecision, TileEvidence
from s2c_batch.kernels.comparators.options import AMGOptions


@dataclass(frozen=True)
class MaskComparator(ABC):
    """A mask-level comparator with its options.

    Subclasses add their own section's options as a field named after the section.

    Attributes:
        amg: the proposal generator's options.
    """

    #: The registry's name (``model.comparator``).
    name: ClassVar[str]
    #: The stability score offset of the release's proposals (``amg.stability_score_offset: null``);
    #: ``None`` for a method that proposes no masks.
    release_offset: ClassVar[float | None] = None

    amg: AMGOptions = field(default_factory=AMGOptions)

    def uses_instances(self, identifier: bool) -> bool:
        """Whether the masks are the identifier's instances (with ``identifier`` running)."""
        return False

    def uses_proposals(self, identifier: bool) -> bool:
        """Whether the masks are class-agnostic proposals (needs SAM 3's tracker head or SAM)."""
        return False

    @property
    def features(self) -> Literal["sam", "dinov2"] | None:
        """The features of latent matching: the masks' SAM embedding, the last DINOv2 tap, or none."""
        return None

    @property
    def uses_class_scores(self) -> bool:
        """Whether the decision reads the identifier's class scores (M-C-I, UCD-SCM)."""
        return False

    @property
    def uses_levels(self) -> bool:
        """Whether the decision reads SAM 3's multi-level features (UCD-SCM)."""
        return False

    def sections(self) -> tuple[str, ...]:
        """The config sections whose options the method reads (for :meth:`to_json`)."""
        return ("amg",)

    def generator(self) -> MaskGeneratorSettings:
        """The proposal generator's settings, the stability offset resolved to the release's.

        Raises:
            ValueError: the method proposes no masks and ``amg.stability_score_offset`` is unset.
        """
        a = self.amg
        offset = a.stability_score_offset if a.stability_score_offset is not None else self.release_offset
        if offset is None:
            raise ValueError(f"{self.name} proposes no masks; set amg.stability_score_offset to generate some")
        return MaskGeneratorSettings(
            points_per_side=a.points_per_side, points_per_batch=a.points_per_batch,
            pred_iou_thresh=a.pred_iou_thresh, stability_score_thresh=a.stability_score_thresh,
            stability_score_offset=offset, box_nms_thresh=a.box_nms_thresh, max_area=a.max_area,
        )

    @abstractmethod
    def decide(self, evidence: TileEvidence) -> TileDecision:
        """The method's decision on one tile pair."""

    def to_json(self) -> dict[str, Any]:
        """The method and the options it reads, as plain JSON data."""
        return {"comparator": self.name, **{k: asdict(getattr(self, k)) for k in self.sections()}}
