"""A comparator registry entry: what a comparator is, what it needs, how it is built.

:class:`ComparatorSpec` is one row of the registry
(:mod:`s2c_batch.kernels.comparators.registry`): its :class:`Family`, its support, its
:class:`Needs` (:class:`When` it needs a part) and its :class:`Fit`, with the builders the
registry's functions call. The rules that follow from an entry (which checkpoints, whether a
run fits it, whether torch runs) are its methods, so that no caller compares names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

from s2c_batch.kernels.comparators.base import FittedComparator, SupportKind
from s2c_batch.kernels.comparators.options import ComparatorOptions

if TYPE_CHECKING:  # torch: the modules are imported by the builders that need them
    from s2c_batch.kernels.comparators.classical.fitting import FitSettings, RoundRunner
    from s2c_batch.kernels.comparators.learned.dcva import DCVA
    from s2c_batch.kernels.comparators.mask_level.base import MaskComparator

#: What a run hands every task besides the model: a fitted classical comparator, DCVA's
#: fitted selection, or a mask-level method with its options (``None`` for CACH).
RunComparator: TypeAlias = "FittedComparator | DCVA | MaskComparator"


class Family(Enum):
    """What kind of method a comparator is, and so which predictor runs it."""

    #: Fitted from scene statistics (or fixed), pointwise or neighbourhood, numpy on the host.
    CLASSICAL = "classical"
    #: A tile head on the DINOv2 taps (CACH, DCVA), on the predictor's device.
    LEARNED = "learned"
    #: The paper's systems that decide change on object masks, per tile.
    MASK_LEVEL = "mask_level"


class When(Enum):
    """When a comparator needs a model part."""

    NEVER = "never"
    ALWAYS = "always"
    #: Only with one of its options (:attr:`ComparatorSpec.dinov2_option`; DynamicEarth's M-C-I proposals).
    OPTION = "option"
    #: Only when ``model.identifier`` is ``none`` (AnyChange proposes its masks, AnyChange* takes the instances).
    WITHOUT_IDENTIFIER = "without identifier"


class Fit(Enum):
    """What a run fits to the scene before its blocks."""

    #: Nothing: a trained head, or a method with fixed options.
    NONE = "none"
    #: Only with ``model.standardize: scene`` or ``model.threshold: otsu``; else the fixed oracle (CVA).
    ASKED = "asked"
    #: Whole-scene statistics over every block (:mod:`~s2c_batch.kernels.comparators.classical.fitting`).
    SCENE = "scene"
    #: The backbone on tiles spread over the scene (DCVA's channel selection).
    TILES = "tiles"


@dataclass(frozen=True)
class Needs:
    """What a comparator needs besides the two images.

    Attributes:
        dinov2: DINOv2's taps (``model.backbone_checkpoint``).
        cach: the CACH head's weights (``model.cach_checkpoint``).
        proposals: class-agnostic mask proposals from SAM 3's tracker head
            (``model.sam3_checkpoint``) or original SAM (``model.sam_checkpoint``).
        identifier: ``model.identifier: segearth_ov3`` (its instances or class scores);
            otherwise the identifier is optional.
        rgb: three bands (the backbone's or SAM's images); every comparator takes RGB
            beside the identifier.
        otsu: its method thresholds by one Otsu over the scene's non-zero levels
            (``model.threshold`` must be ``otsu``).
    """

    dinov2: When = When.NEVER
    cach: bool = False
    proposals: When = When.NEVER
    identifier: bool = False
    rgb: bool = False
    otsu: bool = False


def _no_halo(options: ComparatorOptions) -> int:
    return 0


@dataclass(frozen=True)
class ComparatorSpec:
    """One registered comparator.

    Attributes:
        name: the ``model.comparator`` value.
        family: classical, learned or mask-level.
        support: how far a pixel's result looks (``tile`` for every tile model).
        needs: what it needs besides the images.
        fit: what a run fits to the scene first.
        summary: one line for tables and errors.
        checkpoint_uses: ``(key, why)`` for the checkpoints its method needs, for error messages.
        build: the run's comparator when nothing is fitted, from the options (``None``
            for CACH, whose head is the predictor's); unset when it is always fitted.
        fit_scene: its fit to a scene from per-block statistics (classical ones).
        load: its fitted parameters from :meth:`to_json` data (fitted ones).
        halo: pixels its result depends on around a pixel, from the options.
        dinov2_option: with ``needs.dinov2`` :attr:`When.OPTION`, whether the options ask for DINOv2.
    """

    name: str
    family: Family
    support: SupportKind
    needs: Needs
    fit: Fit
    summary: str
    checkpoint_uses: tuple[tuple[str, str], ...] = ()
    build: Callable[[ComparatorOptions], RunComparator | None] | None = field(default=None, repr=False)
    fit_scene: Callable[[FitSettings, RoundRunner], FittedComparator] | None = field(default=None, repr=False)
    load: Callable[[Mapping[str, Any]], FittedComparator | DCVA] | None = field(default=None, repr=False)
    halo: Callable[[ComparatorOptions], int] = field(default=_no_halo, repr=False)
    dinov2_option: Callable[[ComparatorOptions], bool] | None = field(default=None, repr=False)

    def uses_torch(self, identifier: bool) -> bool:
        """Whether a torch model runs: everything but a classical comparator without identifier."""
        return self.family is not Family.CLASSICAL or identifier

    def needs_rgb(self, identifier: bool) -> bool:
        """Whether the tiles must have three bands (RGB)."""
        return self.needs.rgb or identifier

    def fitted(self, *, standardize: bool, otsu: bool) -> bool:
        """Whether a run fits it to the scene (``model.standardize: scene``, ``model.threshold: otsu``)."""
        if self.fit is Fit.ASKED:
            return standardize or otsu
        return self.fit is not Fit.NONE

    def uses_dinov2(self, options: ComparatorOptions) -> bool:
        """Whether DINOv2 runs with these options."""
        if self.needs.dinov2 is When.OPTION:
            return self.dinov2_option is not None and self.dinov2_option(options)
        return self.needs.dinov2 is When.ALWAYS

    def proposes_up_front(self, identifier: bool) -> bool:
        """Whether every run proposes masks, so the predictor builds the segmenter with the models.

        DynamicEarth's M-C-I builds it on first use; AnyChange* takes the identifier's instances.
        """
        return self.needs.proposals is When.ALWAYS or (self.needs.proposals is When.WITHOUT_IDENTIFIER
                                                       and not identifier)

    def checkpoints(self, *, identifier: bool, sam_checkpoint: bool) -> tuple[str, ...]:
        """The ``model`` checkpoint keys it loads (options of other sections aside: :meth:`uses_dinov2`).

        Args:
            identifier: ``model.identifier`` is ``segearth_ov3``.
            sam_checkpoint: ``model.sam_checkpoint`` is set (original SAM proposes instead of SAM 3's tracker).
        """
        keys: list[str] = []
        if self.needs.dinov2 is When.ALWAYS:
            keys.append("backbone_checkpoint")
        if self.needs.cach:
            keys.append("cach_checkpoint")
        proposals_on_sam3 = self.needs.proposals is not When.NEVER and not sam_checkpoint
        if identifier or proposals_on_sam3:
            keys.append("sam3_checkpoint")
        if self.family is Family.MASK_LEVEL and sam_checkpoint:
            keys.append("sam_checkpoint")
        return tuple(keys)

    def checkpoint_use(self, key: str) -> str | None:
        """Why it needs the checkpoint ``key``, for error messages (``None`` when nothing specific)."""
        return dict(self.checkpoint_uses).get(key)
