"""Options of the comparators and of their fit: the YAML sections other than ``model``.

Fitted comparators: ``fit``, ``pca_kmeans``, ``irmad``, ``dcva``. Mask-level comparators
(the paper's OVCD systems): ``amg`` (class-agnostic proposals), ``anychange``,
``inst_ceg``, ``dynamicearth``, ``ucd_scm``. :class:`ComparatorOptions` holds them all, as
the comparator registry's builders take them.

Kept in ``kernels`` beside :class:`~s2c_batch.kernels.model_config.ModelConfig`
because the fit and the comparators take them; the YAML loading and the
unknown-key checks live in :mod:`s2c_batch.pipeline.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from s2c_batch.kernels.errors import ConfigError


@dataclass(frozen=True)
class FitOptions:
    """How whole-scene parameters are fitted (YAML section ``fit``).

    Attributes:
        sample_size: pixels at most in the fit sample (a lattice anchored at the
            scene origin; every valid pixel when there are no more than this).
        percentile: percentile of the change magnitude over the sample that maps
            to probability 1 (``s_ref`` of ``p = min(1, s / s_ref)``).
        min_valid: valid pixels a fit needs at the least.
    """

    sample_size: int = 1_000_000
    percentile: float = 99.9
    min_valid: int = 100

    def __post_init__(self) -> None:
        if self.sample_size < 100:
            raise ConfigError(f"fit.sample_size must be >= 100, got {self.sample_size!r}")
        if not 50.0 <= self.percentile <= 100.0:
            raise ConfigError(f"fit.percentile must be within [50, 100], got {self.percentile!r}; e.g. 99.9")
        if self.min_valid < 2:
            raise ConfigError(f"fit.min_valid must be >= 2, got {self.min_valid!r}")


@dataclass(frozen=True)
class PCAKMeansOptions:
    """PCA-KMeans (YAML section ``pca_kmeans``; Celik 2009).

    Attributes:
        block: side ``h`` of the blocks and neighbourhoods (Celik: 3 to 9).
        components: eigenvectors ``S`` kept.
        n_init: k-means++ starts; the lowest inertia wins.
        seed: seed of the k-means++ starts.
    """

    block: int = 5
    components: int = 3
    n_init: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.block <= 15:
            raise ConfigError(f"pca_kmeans.block must be within [2, 15], got {self.block!r}; Celik uses 3 to 9")
        if not 1 <= self.components <= self.block * self.block:
            raise ConfigError(
                f"pca_kmeans.components must be within [1, block^2 = {self.block * self.block}], "
                f"got {self.components!r}"
            )
        if self.n_init < 1:
            raise ConfigError(f"pca_kmeans.n_init must be >= 1, got {self.n_init!r}")


@dataclass(frozen=True)
class IRMADOptions:
    """IR-MAD (YAML section ``irmad``; Nielsen 2007).

    Attributes:
        max_iterations: reweighting iterations at most (1 = plain MAD).
        tolerance: stop when no canonical correlation moves more than this (the
            correlations converge slowly, about linearly: 1e-4 takes some 30
            iterations on a Sentinel-2 city, 1e-6 over 100).
    """

    max_iterations: int = 100
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ConfigError(f"irmad.max_iterations must be >= 1, got {self.max_iterations!r}")
        if not 0.0 < self.tolerance < 1.0:
            raise ConfigError(f"irmad.tolerance must be within (0, 1), got {self.tolerance!r}")


@dataclass(frozen=True)
class DCVAOptions:
    """Deep change vector analysis (YAML section ``dcva``; Saha et al. 2019) on the DINOv2 taps.

    Attributes:
        layers: which of the backbone's four taps (0-3, blocks 2, 5, 8, 11) are compared.
        features: fraction of each layer's channels kept: those whose difference varies
            most over the fit tiles.
        fit_tiles: tiles of the global grid, spread over the scene, that the fit runs on.
    """

    layers: tuple[int, ...] = (0, 1, 2, 3)
    features: float = 0.1
    fit_tiles: int = 16

    def __post_init__(self) -> None:
        if not self.layers or any(not 0 <= t <= 3 for t in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"dcva.layers must name distinct taps among 0..3, got {list(self.layers)!r}")
        if not 0.0 < self.features <= 1.0:
            raise ConfigError(f"dcva.features must be within (0, 1], got {self.features!r}")
        if self.fit_tiles < 1:
            raise ConfigError(f"dcva.fit_tiles must be >= 1, got {self.fit_tiles!r}")


@dataclass(frozen=True)
class AMGOptions:
    """The point-grid automatic mask generator of class-agnostic proposals (YAML section ``amg``).

    Defaults are those of AnyChange's ``SimpleMaskGenerator`` and DynamicEarth's
    mask proposal (one crop, the whole tile); docs/comparators.md.

    Attributes:
        points_per_side: the grid has ``points_per_side^2`` points over each tile.
        points_per_batch: points prompted at once (memory: 3 masks of the tile per point).
        pred_iou_thresh: a mask is kept when its predicted IoU is *above* this.
        stability_score_thresh: ... and its stability score at least this.
        stability_score_offset: offset of the logit thresholds of the stability score;
            ``null`` = the release of the comparator (AnyChange 1.0, DynamicEarth 0.9).
        box_nms_thresh: box IoU above which the lower-scored of two masks of a date is
            dropped (and, for DynamicEarth M-C-I and AnyChange's changed masks, of both dates).
        max_area: masks covering this fraction of the tile or more are dropped.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.95
    stability_score_offset: float | None = None
    box_nms_thresh: float = 0.7
    max_area: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.points_per_side <= 128:
            raise ConfigError(f"amg.points_per_side must be within [1, 128], got {self.points_per_side!r}; "
                              "AnyChange and DynamicEarth use 32")
        if self.points_per_batch < 1:
            raise ConfigError(f"amg.points_per_batch must be >= 1, got {self.points_per_batch!r}")
        for key in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"amg.{key} must be within [0, 1], got {value!r}")
        if self.stability_score_offset is not None and self.stability_score_offset < 0:
            raise ConfigError(f"amg.stability_score_offset must be >= 0 or null, got {self.stability_score_offset!r}")
        if not 0.0 < self.max_area <= 1.0:
            raise ConfigError(f"amg.max_area must be within (0, 1], got {self.max_area!r}; the releases use 0.8")


def _check_theta(section: str, theta: float | None) -> None:
    if theta is not None and not 0.0 <= theta <= 180.0:
        raise ConfigError(f"{section}.theta must be an angle in degrees within [0, 180], got {theta!r}")


@dataclass(frozen=True)
class AnyChangeOptions:
    """AnyChange's bitemporal latent matching (YAML section ``anychange``; Zheng et al. 2024).

    Attributes:
        theta: a mask is changed when ``-cos(mean_t1, mean_t2) > cos(theta)`` (degrees;
            the release's default 155, its README example 145).
        features: ``sam``: the image embedding of the SAM that produced the masks (SAM 3's
            72 x 72 FPN level at 1008 px, or original SAM's un-normalised neck output);
            ``dinov2``: the last DINOv2 tap (needs ``model.backbone_checkpoint``).
        max_changes: changed masks kept at most per tile, by change confidence (the release: 1000).
    """

    theta: float = 155.0
    features: Literal["sam", "dinov2"] = "sam"
    max_changes: int = 1000

    def __post_init__(self) -> None:
        _check_theta("anychange", self.theta)
        if self.max_changes < 1:
            raise ConfigError(f"anychange.max_changes must be >= 1, got {self.max_changes!r}")


@dataclass(frozen=True)
class InstCEGOptions:
    """Inst-CEG's instance overlap gate (YAML section ``inst_ceg``; DynamicEarth's ``instance_ceg``).

    Attributes:
        gate: an instance is changed when the sum of its mask IoUs with every instance
            of the other date is at most this (the release: 0.01).
    """

    gate: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.gate:
            raise ConfigError(f"inst_ceg.gate must be >= 0, got {self.gate!r}; the release uses 0.01")


@dataclass(frozen=True)
class DynamicEarthOptions:
    """DynamicEarth (YAML section ``dynamicearth``; Li et al. 2025).

    Attributes:
        mode: ``imc``: identifier instances, the overlap gate, then latent matching on
            DINOv2; ``mci``: class-agnostic proposals, latent matching on DINOv2, then
            each mask's class at t1 and t2 from the identifier.
        theta: latent matching angle in degrees; ``null`` = the release's value for
            building sets (I-M-C 135, M-C-I 145).
        gate: I-M-C's overlap gate (as ``inst_ceg.gate``).
        instance_targets: M-C-I keeps a mask only where its own date shows a target
            class (the release's ``is_instance_class``, for buildings); ``false`` for
            land-cover targets (classes differ, one of them a target).
    """

    mode: Literal["imc", "mci"] = "imc"
    theta: float | None = None
    gate: float = 0.01
    instance_targets: bool = True

    def __post_init__(self) -> None:
        _check_theta("dynamicearth", self.theta)
        if not 0.0 <= self.gate:
            raise ConfigError(f"dynamicearth.gate must be >= 0, got {self.gate!r}; the release uses 0.01")

    @property
    def angle(self) -> float:
        """``theta``, or the release's default of the mode."""
        if self.theta is not None:
            return self.theta
        return 135.0 if self.mode == "imc" else 145.0


@dataclass(frozen=True)
class UCDSCMOptions:
    """UCD-SCM (YAML section ``ucd_scm``; Tan et al. 2024) on SAM 3 features and masks.

    Attributes:
        min_mask_area: masks of at most this many pixels get no target score (the release: 100).
        channels: channels kept per feature level, by a fixed stride (the release: 160).
    """

    min_mask_area: int = 100
    channels: int = 160

    def __post_init__(self) -> None:
        if self.min_mask_area < 0:
            raise ConfigError(f"ucd_scm.min_mask_area must be >= 0, got {self.min_mask_area!r}")
        if self.channels < 1:
            raise ConfigError(f"ucd_scm.channels must be >= 1, got {self.channels!r}")


@dataclass(frozen=True)
class ComparatorOptions:
    """Every comparator section of a config, as one value (what the registry's builders take).

    Attributes:
        fit: ``fit`` section.
        pca_kmeans: ``pca_kmeans`` section.
        irmad: ``irmad`` section.
        dcva: ``dcva`` section.
        amg: ``amg`` section.
        anychange: ``anychange`` section.
        inst_ceg: ``inst_ceg`` section.
        dynamicearth: ``dynamicearth`` section.
        ucd_scm: ``ucd_scm`` section.
    """

    fit: FitOptions = field(default_factory=FitOptions)
    pca_kmeans: PCAKMeansOptions = field(default_factory=PCAKMeansOptions)
    irmad: IRMADOptions = field(default_factory=IRMADOptions)
    dcva: DCVAOptions = field(default_factory=DCVAOptions)
    amg: AMGOptions = field(default_factory=AMGOptions)
    anychange: AnyChangeOptions = field(default_factory=AnyChangeOptions)
    inst_ceg: InstCEGOptions = field(default_factory=InstCEGOptions)
    dynamicearth: DynamicEarthOptions = field(default_factory=DynamicEarthOptions)
    ucd_scm: UCDSCMOptions = field(default_factory=UCDSCMOptions)
