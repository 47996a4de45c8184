"""Options of the fitted comparators and of their fit: the YAML sections ``fit``, ``pca_kmeans``, ``irmad``, ``dcva``.

Kept in ``kernels`` beside :class:`~s2c_batch.kernels.model_config.ModelConfig`
because the fit and the comparators take them; the YAML loading and the
unknown-key checks live in :mod:`s2c_batch.pipeline.config`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
