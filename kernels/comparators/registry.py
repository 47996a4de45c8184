"""The comparator registry: every ``model.comparator``, what it is, what it needs and how it is built.

As timm's ``register_model`` / ``create_model`` and segment-anything's ``sam_model_registry``,
one table maps each name to its entry, a :class:`~s2c_batch.kernels.comparators.spec.ComparatorSpec`:

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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.options import ComparatorOptions
from s2c_batch.kernels.comparators.spec import ComparatorSpec, Family, Fit, Needs, RunComparator, When
from s2c_batch.kernels.errors import ConfigError

if TYPE_CHECKING:  # torch: the modules are imported by the builders that need them
    from s2c_batch.kernels.comparators.classical.fitting import FitSettings, RoundRunner
    from s2c_batch.kernels.comparators.learned.dcva import DCVA
    from s2c_batch.kernels.comparators.mask_level.base import MaskComparator

__all__ = [
    "ComparatorName",
    "ComparatorSpec",
    "Family",
    "Fit",
    "Needs",
    "RunComparator",
    "When",
    "comparator_from_json",
    "comparator_names",
    "comparator_spec",
    "create_comparator",
    "create_mask_comparator",
    "fit_comparator",
    "is_comparator",
    "register_comparator",
]

#: The values of ``model.comparator`` (every registered name; a test keeps the two equal).
ComparatorName = Literal["cach", "cva", "pca_kmeans", "irmad", "dcva", "anychange", "inst_ceg", "dynamicearth",
                         "ucd_scm"]

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
