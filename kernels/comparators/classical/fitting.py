"""Fitting the classical comparators to a scene: rounds of per-block statistics, then the fit.

A fit is a few *rounds*. Each round is a small frozen object with a ``halo`` (pixels it
reads around a block's core) and a ``block`` method that turns one block's pixels into
a part; whoever runs the fit (the pipeline on Dask, or a test on one whole-scene array)
applies it to every block and hands the parts back. Each comparator's fit
(:func:`fit_cva_to_scene`, :func:`fit_irmad_to_scene`, :func:`fit_pca_kmeans_to_scene`; the
registry's :func:`~s2c_batch.kernels.comparators.registry.fit_comparator` picks it by name)
then combines them:

1. moments: valid pixels and per-band means and standard deviations of both dates
   (for ``model.standardize: scene``, and the sample's spacing);
2. ``pca_kmeans`` only: covariance of the ``h x h`` blocks of the difference image;
3. a sample: comparator features at a lattice of valid pixels (all of them when they
   fit in ``fit.sample_size``);
4. on the sample: ``s_ref`` (CVA, IR-MAD), the IR-MAD iteration, the 2-means centres.

The result depends on the pixels only: not on the block size, the worker count or
retries (see :mod:`s2c_batch.kernels.comparators.classical.statistics`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from s2c_batch.kernels.comparators.classical.common import Standardization, standardized
from s2c_batch.kernels.comparators.classical.cva import CVA
from s2c_batch.kernels.comparators.classical.irmad import IRMAD, fit_irmad
from s2c_batch.kernels.comparators.classical.pca_kmeans import (
    PCAKMeans,
    block_vectors,
    difference_image,
    nearer_second,
    neighbourhood_features,
    offsets,
    principal_vectors,
    two_means,
)
from s2c_batch.kernels.comparators.classical.statistics import (
    CrossSums,
    MomentSums,
    SamplePart,
    add_cross,
    add_moments,
    cells_of,
    cross_sums,
    gather_sample,
    lattice_step,
    moment_parts,
    sample_part,
)
from s2c_batch.kernels.comparators.options import FitOptions, IRMADOptions, PCAKMeansOptions
from s2c_batch.kernels.errors import FitError
from s2c_batch.kernels.raster.tiling import Window


class FitRound(Protocol):
    """One pass over the scene's blocks."""

    @property
    def halo(self) -> int:
        """Pixels read around each block's core."""
        ...

    def block(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, window: Window, core: Window) -> list[Any]:
        """The parts of one block.

        Args:
            t1: float32 ``[C, h, w]`` in [0, 1] over ``window`` (0 where invalid).
            t2: float32 ``[C, h, w]``.
            valid: bool ``[h, w]``, valid in both dates (False outside the scene).
            window: ``core`` grown by ``halo`` on every side (it may reach past the scene).
            core: the block's own pixels.
        """
        ...


#: Runs a round over every block of the scene and returns all their parts, in any order.
RoundRunner = Callable[[FitRound], Sequence[Any]]


@dataclass(frozen=True)
class MomentsRound:
    """Per-cell moment sums of both dates' bands (t1's C bands, then t2's)."""

    cell: int
    halo: int = 0

    def block(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, window: Window, core: Window) -> list[Any]:
        """Moment sums of the valid pixels of each cell of ``core``."""
        return moment_parts(np.concatenate([t1, t2]), valid, window, core, self.cell)


@dataclass(frozen=True)
class BlockCovarianceRound:
    """Per-cell sums of the difference image's ``h x h`` blocks and their outer products."""

    cell: int
    block_size: int
    scene_shape: tuple[int, int]
    standardization: Standardization | None

    @property
    def halo(self) -> int:
        """A block starting in the core reaches ``h - 1`` pixels past it."""
        return self.block_size - 1

    def block(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, window: Window, core: Window) -> list[Any]:
        """Cross sums of the blocks whose first pixel lies in each cell of ``core``."""
        d = difference_image(t1, t2, valid, self.standardization)
        return [
            cross_sums(block_vectors(d, valid, window, cell, self.block_size, self.scene_shape))
            for cell in cells_of(core, self.cell)
        ]


class SampleFeatures(Protocol):
    """What a sample records at each of its pixels."""

    @property
    def halo(self) -> int:
        """Pixels the features depend on around a pixel."""
        ...

    def sample_features(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Features ``[F, h, w]`` over a window (inputs ``[C, h, w]``)."""
        ...


@dataclass(frozen=True)
class SampleRound:
    """The features of the valid lattice pixels of each block."""

    features: SampleFeatures
    step: int
    scene_width: int

    @property
    def halo(self) -> int:
        """The features' own reach."""
        return self.features.halo

    def block(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, window: Window, core: Window) -> list[Any]:
        """One :class:`SamplePart` for the block."""
        feats = self.features.sample_features(t1, t2, valid)
        return [sample_part(feats, valid, window, core, step=self.step, scene_width=self.scene_width)]


@dataclass(frozen=True)
class MagnitudeFeatures:
    """One feature: the change magnitude of a pointwise comparator (CVA)."""

    comparator: CVA
    halo: int = 0

    def sample_features(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[1, h, w]``: ``s``."""
        return self.comparator.magnitude(t1, t2, valid)[None]


@dataclass(frozen=True)
class BandFeatures:
    """Both dates' bands, optionally standardised (IR-MAD): ``2C`` features."""

    standardization: Standardization | None
    halo: int = 0

    def sample_features(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[2C, h, w]``: t1's bands, then t2's."""
        return np.concatenate(standardized(self.standardization, t1, t2, valid))


@dataclass(frozen=True)
class PCAFeatures:
    """The PCA features of each pixel's neighbourhood, then the difference image: ``S + 1`` features."""

    block_size: int
    mean: tuple[float, ...]
    vectors: tuple[tuple[float, ...], ...]
    standardization: Standardization | None

    @property
    def halo(self) -> int:
        """The neighbourhood's reach."""
        return max(offsets(self.block_size))

    def sample_features(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[S + 1, h, w]``."""
        d = difference_image(t1, t2, valid, self.standardization)
        feats = neighbourhood_features(d, self.block_size, np.asarray(self.mean), np.asarray(self.vectors))
        return np.concatenate([feats, d[None]])


@dataclass(frozen=True)
class FitSettings:
    """Everything a fit needs besides the pixels.

    Attributes:
        comparator: ``cva``, ``pca_kmeans`` or ``irmad``.
        bands: C, the selected bands.
        scene_shape: ``(height, width)``.
        cell: side of the statistics cells (divides the block size).
        standardize: ``model.standardize == "scene"``.
        fixed_threshold: the mask threshold is a number (not ``otsu``): with CVA and
            no standardisation nothing is fitted (the oracle).
        fit: ``fit`` section.
        pca_kmeans: ``pca_kmeans`` section.
        irmad: ``irmad`` section.
    """

    comparator: str
    bands: int
    scene_shape: tuple[int, int]
    cell: int
    standardize: bool
    fixed_threshold: bool
    fit: FitOptions = FitOptions()
    pca_kmeans: PCAKMeansOptions = PCAKMeansOptions()
    irmad: IRMADOptions = IRMADOptions()


@dataclass(frozen=True)
class SceneFit:
    """What every classical fit starts from: the scene's standardisation and its sample lattice.

    Attributes:
        settings: what to fit and how.
        run_round: applies a round to every block and returns the parts.
        standardization: the dates' band statistics with ``model.standardize: scene``, else ``None``.
        step: the spacing of the sample's lattice (:func:`lattice_step`).
    """

    settings: FitSettings
    run_round: RoundRunner
    standardization: Standardization | None
    step: int

    def sample(self, features: SampleFeatures) -> np.ndarray:
        """The features of the sample's pixels, in raster order: float64 ``[n, F]``.

        Raises:
            FitError: the sample holds fewer than 2 pixels.
        """
        parts = [p for p in self.run_round(SampleRound(features, self.step, self.settings.scene_shape[1]))
                 if isinstance(p, SamplePart)]
        values = gather_sample(parts, self.settings.fit.sample_size).values
        if len(values) < 2:
            raise FitError(f"the fit sample holds {len(values)} pixel(s); raise fit.sample_size")
        return np.asarray(values, np.float64)


def scene_fit(settings: FitSettings, run_round: RoundRunner) -> SceneFit:
    """The first round of every fit: the moments of both dates, the standardisation and the sample's spacing.

    Raises:
        FitError: fewer valid pixels than ``fit.min_valid``, or a constant band with
            ``model.standardize: scene``; the message gives the numbers.
    """
    c = settings.bands
    moments = add_moments([p for p in run_round(MomentsRound(settings.cell)) if isinstance(p, MomentSums)], 2 * c)
    if moments.count < settings.fit.min_valid:
        raise FitError(
            f"the scene has {moments.count} pixel(s) valid in both dates; fitting {settings.comparator} needs at "
            f"least fit.min_valid = {settings.fit.min_valid}; check input.nodata, --bbox and that the scenes overlap"
        )
    standardization = _standardization(moments, c) if settings.standardize else None
    return SceneFit(settings, run_round, standardization, lattice_step(moments.count, settings.fit.sample_size))


def fit_cva_to_scene(settings: FitSettings, run_round: RoundRunner) -> CVA:
    """CVA's ``s_ref`` (and standardisation) from the scene; the oracle CVA when nothing is asked.

    With ``model.standardize: none`` and a numeric threshold nothing is read: ``s_ref = sqrt(C)``.

    Raises:
        FitError: as :func:`scene_fit`, or a sample the method cannot use.
    """
    if not settings.standardize and settings.fixed_threshold:
        return CVA()
    scene = scene_fit(settings, run_round)
    partial = CVA(reference=1.0, standardization=scene.standardization)
    s = scene.sample(MagnitudeFeatures(partial))[:, 0]
    return CVA(reference=_reference(s, settings.fit.percentile), standardization=scene.standardization)


def fit_irmad_to_scene(settings: FitSettings, run_round: RoundRunner) -> IRMAD:
    """IR-MAD's iteration on the scene's sample, and ``s_ref``.

    Raises:
        FitError: as :func:`scene_fit`, or IR-MAD cannot be fitted on the sample.
    """
    scene = scene_fit(settings, run_round)
    c = settings.bands
    values = scene.sample(BandFeatures(scene.standardization))
    try:
        fit = fit_irmad(values[:, :c], values[:, c:], max_iterations=settings.irmad.max_iterations,
                        tolerance=settings.irmad.tolerance)
    except ValueError as exc:
        raise FitError(f"IR-MAD cannot be fitted: {exc}") from exc
    unscaled = IRMAD.from_fit(fit, 1.0, None)  # the sample is standardised already
    s = unscaled.magnitude(values[:, :c].T[:, :, None].astype(np.float32),
                         values[:, c:].T[:, :, None].astype(np.float32),
                         np.ones((len(values), 1), bool))[:, 0]
    return IRMAD.from_fit(fit, _reference(s, settings.fit.percentile), scene.standardization)


def fit_pca_kmeans_to_scene(settings: FitSettings, run_round: RoundRunner) -> PCAKMeans:
    """PCA-KMeans' eigenvectors from the scene's blocks, then the 2-means centres on the sample.

    Raises:
        FitError: as :func:`scene_fit`, or fewer than 2 complete blocks of valid pixels.
    """
    return _fit_pca_kmeans(settings, run_round, scene_fit(settings, run_round))


def _fit_pca_kmeans(settings: FitSettings, run_round: RoundRunner, scene: SceneFit) -> PCAKMeans:
    standardization = scene.standardization
    opts = settings.pca_kmeans
    h = opts.block
    parts = run_round(BlockCovarianceRound(settings.cell, h, settings.scene_shape, standardization))
    cross = add_cross([p for p in parts if isinstance(p, CrossSums) and p.count], h * h)
    if cross.count < 2:
        raise FitError(
            f"PCA-KMeans needs at least 2 complete {h}x{h} blocks of valid pixels, the scene has {cross.count}; "
            "lower pca_kmeans.block or check input.nodata"
        )
    mean, cov = cross.covariance()
    vectors = principal_vectors(mean, cov, opts.components)
    mean_t = tuple(float(v) for v in mean)
    vectors_t = tuple(tuple(float(v) for v in row) for row in vectors)
    values = scene.sample(PCAFeatures(h, mean_t, vectors_t, standardization))
    feats, d = values[:, :-1], values[:, -1]
    centres = two_means(feats, n_init=opts.n_init, seed=opts.seed)
    second = nearer_second(feats, centres)
    mean_d = [float(d[~second].mean()) if (~second).any() else -np.inf,
              float(d[second].mean()) if second.any() else -np.inf]
    change = 1 if mean_d[1] > mean_d[0] else 0
    return PCAKMeans(block=h, mean=mean_t, vectors=vectors_t,
                     no_change=tuple(float(v) for v in centres[1 - change]),
                     change=tuple(float(v) for v in centres[change]), standardization=standardization)


def _standardization(moments: MomentSums, c: int) -> Standardization:
    mean, std = moments.mean, moments.std
    flat = [i for i in range(2 * c) if not std[i] > 0]
    if flat:
        names = [f"t{1 + i // c} band #{1 + i % c}" for i in flat]
        raise FitError(
            f"model.standardize=scene: {', '.join(names)} (of the selected input.bands) is constant over the "
            "valid pixels; drop it from input.bands or set model.standardize=none"
        )
    return Standardization(tuple(mean[:c]), tuple(std[:c]), tuple(mean[c:]), tuple(std[c:]))


def _reference(magnitude: np.ndarray, percentile: float) -> float:
    """``s_ref``: the percentile of the sample's magnitudes (1.0 when they are all 0)."""
    ref = float(np.percentile(magnitude, percentile))
    return ref if ref > 0 else 1.0
