"""The comparator registry: every ``model.comparator``, what it is, what it needs and how it is built.

As timm's ``register_model`` / ``create_model`` and segment-anything's ``sam_model_registry``,
one table maps each name to its entry, a :class:`ComparatorSpec`:

- its *family* (:class:`Family`): ``classical`` (fitted from scene statistics, pointwise or
  neighbourhood, numpy), ``learned`` (tile heads on the DINOv2 taps) or ``mask_level``
  (the paper's systems that decide on object masks);
- its *support*: ``point``, ``neighbourhood`` or ``tile``
  (:class:`~s2c_batch.kernels.comparators.base.Support`);
- what it *needs* (:class:`Needs`): DINOv2's weights, CACH's, class-agnostic proposals
  (SAM 3's tracker head or SAM), the identifier, RGB tiles, Otsu over the scene;
- whether and how it is *fitted* to a scene (:class:`Fit`);
- how it is *built*: the comparator a run uses when nothing is fitted
  (:func:`create_comparator`), its fit to a scene (:func:`fit_comparator`) and its fitted
  parameters read back (:func:`comparator_from_json`).

The tile predictor of each family is built by
:func:`s2c_batch.kernels.predictors.build.build_predictor` from these entries. Comparator
names are compared here and nowhere else: the config validation, the predictors, the
planner, ``compare`` and ``eval`` ask the entry. A new comparator is one
:func:`register_comparator` call below plus its family module (docs/comparators.md).

Nothing here imports torch: each builder imports its family's modules when it is
called, so that loading a config or running a classical comparator stays numpy-only.

Example:
    >>> spec = comparator_spec("pca_kmeans")
    >>> spec.family, spec.support, spec.fit
    (<Family.CLASSICAL: 'classical'>, 'neighbourhood', <Fit.SCENE: 'scene'>)
    >>> comparator_names(Family.CLASSICAL)
    ('cva', 'pca_kmeans', 'irmad')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from s2c_batch.kernels.comparators.base import FittedComparator, SupportKind
from s2c_batch.kernels.comparators.options import ComparatorOptions
from s2c_batch.kernels.errors import ConfigError

if TYPE_CHECKING:  # torch: the modules are imported by the builders that need them
    from s2c_batch.kernels.comparators.classical.fitting import FitSettings, RoundRunner
    from s2c_batch.kernels.comparators.learned.dcva import DCVA
    from s2c_batch.kernels.comparators.mask_level.base import MaskComparator

#: The values of ``model.comparator`` (every registered name; a test keeps the two equal).
ComparatorName = Literal["cach", "cva", "pca_kmeans", "irmad", "dcva", "anychange", "inst_ceg", "dynamicearth",
                         "ucd_scm"]

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


#: The registered comparators by name, in registration order.
_REGISTRY: dict[str, ComparatorSpec] = {}


def register_comparator(spec: ComparatorSpec) -> ComparatorSpec:
    """Add a comparator to the registry.

    Raises:
        ValueError: the name is registered already.
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"comparator {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec
    return spec


def comparator_spec(name: str) -> ComparatorSpec:
    """The registry's entry of ``name``.

    Raises:
        ConfigError: an unknown name; the message lists the valid ones.
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"model.comparator {name!r} is unknown; valid ones are {list(_REGISTRY)}, "
                          "e.g. --set model.comparator=cva")
    return spec


def comparator_names(family: Family | None = None) -> tuple[str, ...]:
    """The registered names (of one family), in registration order."""
    return tuple(n for n, s in _REGISTRY.items() if family is None or s.family is family)


def is_comparator(name: str) -> bool:
    """Whether ``name`` is registered."""
    return name in _REGISTRY


def create_comparator(name: str, options: ComparatorOptions | None = None) -> RunComparator | None:
    """The comparator a run of ``name`` uses when nothing is fitted (as timm's ``create_model``).

    ``None`` for CACH (the head is the predictor's model), the oracle CVA, or a mask-level
    method with its options.

    Raises:
        ConfigError: an unknown name.
        ValueError: the comparator is always fitted to a scene (:func:`fit_comparator`).
    """
    spec = comparator_spec(name)
    if spec.build is None:
        raise ValueError(f"the {name} comparator is fitted to each scene; fit it (fit_comparator) instead")
    return spec.build(options if options is not None else ComparatorOptions())


def create_mask_comparator(name: str, options: ComparatorOptions | None = None) -> MaskComparator:
    """A mask-level comparator with its options.

    Raises:
        ConfigError: ``name`` is no mask-level comparator.
    """
    from s2c_batch.kernels.comparators.mask_level.base import MaskComparator

    made = create_comparator(name, options)
    if not isinstance(made, MaskComparator):
        raise ConfigError(f"model.comparator={name} is no mask-level comparator; choose one of "
                          f"{list(comparator_names(Family.MASK_LEVEL))}")
    return made


def fit_comparator(settings: FitSettings, run_round: RoundRunner) -> FittedComparator:
    """Fit a classical comparator (``settings.comparator``) to the scene.

    Args:
        settings: what to fit and how.
        run_round: applies a round to every block and returns the parts.

    Returns:
        The fitted comparator (CVA, PCAKMeans or IRMAD); the oracle CVA when nothing is asked.

    Raises:
        FitError: the scene cannot be fitted (the message gives the numbers).
        ValueError: the comparator has no scene fit.
    """
    spec = _REGISTRY.get(settings.comparator)
    if spec is None or spec.fit_scene is None:
        raise ValueError(f"no fit for comparator {settings.comparator!r}")
    return spec.fit_scene(settings, run_round)


def comparator_from_json(data: Mapping[str, Any]) -> FittedComparator | DCVA:
    """A fitted comparator from its ``to_json`` data (``.s2c/fit.json``, ``run.json``).

    Raises:
        ValueError: the data names no comparator with fitted parameters.
    """
    name = data.get("comparator")
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None or spec.load is None:
        raise ValueError(f"fitted parameters of an unknown comparator {name!r}")
    return spec.load(data)


# The builders import their family when called (torch for the learned and mask-level ones).


def _nothing(options: ComparatorOptions) -> None:
    return None


def _cva(options: ComparatorOptions) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.cva import CVA

    return CVA()


def _fit_cva(settings: FitSettings, run_round: RoundRunner) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.fitting import fit_cva_to_scene

    return fit_cva_to_scene(settings, run_round)


def _load_cva(data: Mapping[str, Any]) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.cva import CVA

    return CVA.from_json(data)


def _fit_pca_kmeans(settings: FitSettings, run_round: RoundRunner) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.fitting import fit_pca_kmeans_to_scene

    return fit_pca_kmeans_to_scene(settings, run_round)


def _load_pca_kmeans(data: Mapping[str, Any]) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.pca_kmeans import PCAKMeans

    return PCAKMeans.from_json(data)


def _pca_kmeans_halo(options: ComparatorOptions) -> int:
    from s2c_batch.kernels.comparators.classical.pca_kmeans import offsets

    return max(offsets(options.pca_kmeans.block))


def _fit_irmad(settings: FitSettings, run_round: RoundRunner) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.fitting import fit_irmad_to_scene

    return fit_irmad_to_scene(settings, run_round)


def _load_irmad(data: Mapping[str, Any]) -> FittedComparator:
    from s2c_batch.kernels.comparators.classical.irmad import IRMAD

    return IRMAD.from_json(data)


def _load_dcva(data: Mapping[str, Any]) -> DCVA:
    from s2c_batch.kernels.comparators.learned.dcva import DCVA

    return DCVA.from_json(data)


def _anychange(options: ComparatorOptions) -> MaskComparator:
    from s2c_batch.kernels.comparators.mask_level.anychange import AnyChange

    return AnyChange(amg=options.amg, anychange=options.anychange)


def _anychange_on_dinov2(options: ComparatorOptions) -> bool:
    return options.anychange.features == "dinov2"


def _inst_ceg(options: ComparatorOptions) -> MaskComparator:
    from s2c_batch.kernels.comparators.mask_level.inst_ceg import InstCEG

    return InstCEG(amg=options.amg, inst_ceg=options.inst_ceg)


def _dynamicearth(options: ComparatorOptions) -> MaskComparator:
    from s2c_batch.kernels.comparators.mask_level.dynamicearth import DynamicEarth

    return DynamicEarth(amg=options.amg, dynamicearth=options.dynamicearth)


def _ucd_scm(options: ComparatorOptions) -> MaskComparator:
    from s2c_batch.kernels.comparators.mask_level.ucd_scm import UCDSCM

    return UCDSCM(amg=options.amg, ucd_scm=options.ucd_scm)


register_comparator(ComparatorSpec(
    "cach", Family.LEARNED, "tile", Needs(dinov2=When.ALWAYS, cach=True, rgb=True), Fit.NONE,
    "Seg2Change's category-agnostic change head on the DINOv2 taps (trained weights)",
    build=_nothing,
))
register_comparator(ComparatorSpec(
    "cva", Family.CLASSICAL, "point", Needs(), Fit.ASKED,
    "change vector analysis: the pointwise baseline and the pipeline's oracle",
    build=_cva, fit_scene=_fit_cva, load=_load_cva,
))
register_comparator(ComparatorSpec(
    "pca_kmeans", Family.CLASSICAL, "neighbourhood", Needs(), Fit.SCENE,
    "PCA-KMeans (Celik 2009): 2-means on the PCA of each pixel's neighbourhood",
    fit_scene=_fit_pca_kmeans, load=_load_pca_kmeans, halo=_pca_kmeans_halo,
))
register_comparator(ComparatorSpec(
    "irmad", Family.CLASSICAL, "point", Needs(), Fit.SCENE,
    "IR-MAD (Nielsen 2007): iteratively reweighted multivariate alteration detection",
    fit_scene=_fit_irmad, load=_load_irmad,
))
register_comparator(ComparatorSpec(
    "dcva", Family.LEARNED, "tile", Needs(dinov2=When.ALWAYS, rgb=True), Fit.TILES,
    "deep change vector analysis (Saha et al. 2019) on the DINOv2 taps",
    load=_load_dcva,
))
register_comparator(ComparatorSpec(
    "anychange", Family.MASK_LEVEL, "tile",
    Needs(dinov2=When.OPTION, proposals=When.WITHOUT_IDENTIFIER, rgb=True), Fit.NONE,
    "AnyChange (Zheng et al. 2024): bitemporal latent matching of the masks of both dates",
    checkpoint_uses=(("sam3_checkpoint", "AnyChange without identifier proposes masks with SAM 3's tracker head"),),
    build=_anychange, dinov2_option=_anychange_on_dinov2,
))
register_comparator(ComparatorSpec(
    "inst_ceg", Family.MASK_LEVEL, "tile", Needs(identifier=True, rgb=True), Fit.NONE,
    "Inst-CEG (DynamicEarth's instance_ceg): the identifier's instances and an overlap gate",
    build=_inst_ceg,
))
register_comparator(ComparatorSpec(
    "dynamicearth", Family.MASK_LEVEL, "tile",
    Needs(dinov2=When.ALWAYS, proposals=When.OPTION, identifier=True, rgb=True), Fit.NONE,
    "DynamicEarth (Li et al. 2025): I-M-C on the identifier's instances or M-C-I on proposals",
    checkpoint_uses=(("backbone_checkpoint", "DynamicEarth matches masks on DINOv2 features"),),
    build=_dynamicearth,
))
register_comparator(ComparatorSpec(
    "ucd_scm", Family.MASK_LEVEL, "tile",
    Needs(proposals=When.ALWAYS, identifier=True, rgb=True, otsu=True), Fit.NONE,
    "UCD-SCM (Tan et al. 2024): SAM 3 feature distance weighted by the proposals' target scores",
    checkpoint_uses=(("sam3_checkpoint", "UCD-SCM proposes masks with SAM 3's tracker head"),),
    build=_ucd_scm,
))
