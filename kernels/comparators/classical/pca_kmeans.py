"""PCA-KMeans (Celik 2009, IEEE GRSL 6(4)): unsupervised change detection by PCA and 2-means.

1. Difference image ``d = ||a - b||_2`` over the bands (the magnitude, as the public
   implementation does for multispectral pairs; Celik's grey-level ``|a - b|`` for one
   band). Invalid pixels and the outside of the scene count as 0.
2. PCA of the non-overlapping ``h x h`` blocks of ``d`` (a grid anchored at the scene
   origin; blocks with an invalid pixel or past the edge are left out): mean vector
   and the ``S`` leading eigenvectors of their covariance.
3. Every pixel's ``h x h`` neighbourhood (rows ``i - (ceil(h/2) - 1)`` to
   ``i + h - ceil(h/2)``, the same for columns; zeros outside the scene) minus the
   mean, projected onto the eigenvectors: an ``S``-dimensional feature.
4. 2-means on the features of the fit sample (k-means++ seeded with a fixed seed,
   ``n_init`` restarts, the lowest inertia kept); the cluster whose sample pixels
   have the larger mean ``d`` is change.

The probability is the relative distance ``p = d_n / (d_n + d_c)`` to the no-change
and change centres: ``p > 0.5`` exactly where the pixel is nearer the change centre
(the k-means decision), so ``model.threshold: 0.5`` reproduces the method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2c_batch.kernels.comparators.base import Support
from s2c_batch.kernels.comparators.classical.common import Standardization, standardized
from s2c_batch.kernels.comparators.classical.cva import cva_magnitude
from s2c_batch.kernels.raster.tiling import Window


def offsets(h: int) -> tuple[int, int]:
    """Rows (and columns) a neighbourhood reaches ``(before, after)`` the pixel.

    Example:
        >>> offsets(5), offsets(4)
        ((2, 2), (1, 2))
    """
    before = math.ceil(h / 2) - 1
    return before, h - 1 - before


def difference_image(t1: np.ndarray, t2: np.ndarray, valid: np.ndarray,
                     standardization: Standardization | None = None) -> np.ndarray:
    """``d``: float32 ``[h, w]``, 0 where invalid (inputs ``[C, h, w]`` in [0, 1])."""
    d = cva_magnitude(*standardized(standardization, t1, t2, valid))
    d[~valid] = 0.0
    return d


def block_vectors(d: np.ndarray, valid: np.ndarray, window: Window, core: Window, h: int,
                  scene_shape: tuple[int, int]) -> np.ndarray:
    """The ``h x h`` blocks of the global grid whose first pixel lies in ``core``.

    Args:
        d: float32 ``[H, W]`` difference image over ``window`` (which must reach
            ``h - 1`` pixels past ``core`` to the bottom and right).
        valid: bool ``[H, W]``.
        window: what ``d`` covers.
        core: the pixels this block accounts for.
        h: block side.
        scene_shape: ``(height, width)`` of the scene: blocks past its edge are left out.

    Returns:
        float32 ``[n, h * h]``, raster order, blocks holding an invalid pixel left out.
    """
    r0 = -(-core.row // h) * h
    c0 = -(-core.col // h) * h
    rows = [r for r in range(r0, core.row_stop, h) if r + h <= scene_shape[0]]
    cols = [c for c in range(c0, core.col_stop, h) if c + h <= scene_shape[1]]
    if not rows or not cols:
        return np.zeros((0, h * h), np.float32)
    out = np.empty((len(rows), len(cols), h * h), np.float32)
    ok = np.ones((len(rows), len(cols)), bool)
    rr = np.asarray(rows) - window.row
    cc = np.asarray(cols) - window.col
    for k in range(h * h):
        di, dj = divmod(k, h)
        out[:, :, k] = d[np.ix_(rr + di, cc + dj)]
        ok &= valid[np.ix_(rr + di, cc + dj)]
    return out[ok]


def neighbourhood_features(d: np.ndarray, h: int, mean: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Every pixel's neighbourhood minus the mean, projected: float32 ``[S, H, W]``.

    Pixels within the neighbourhood's reach of the array's edge see zeros there
    (correct at the scene's edge; elsewhere the caller reads a halo).

    Args:
        d: float32 ``[H, W]``.
        h: neighbourhood side.
        mean: ``[h * h]`` block mean.
        vectors: ``[h * h, S]`` eigenvectors.
    """
    before, after = offsets(h)
    pad = np.pad(np.asarray(d, np.float32), ((before, after), (before, after)))
    height, width = d.shape
    s = vectors.shape[1]
    feats = np.zeros((s, height, width), np.float32)
    for k in range(h * h):  # offsets in raster order: the same sums for any window
        di, dj = divmod(k, h)
        centred = pad[di : di + height, dj : dj + width] - np.float32(mean[k])
        for j in range(s):
            feats[j] += np.float32(vectors[k, j]) * centred
    return feats


def principal_vectors(mean: np.ndarray, cov: np.ndarray, components: int) -> np.ndarray:
    """The ``components`` leading eigenvectors of ``cov``: float64 ``[D, S]``.

    Each vector's sign is fixed (its largest-magnitude entry positive) so the
    features are the same wherever the decomposition runs.
    """
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:components]
    vecs = vectors[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return np.asarray(vecs * signs)


def two_means(features: np.ndarray, *, n_init: int = 10, max_iterations: int = 300, seed: int = 0) -> np.ndarray:
    """2-means (Lloyd) with k-means++ seeding, the best of ``n_init`` starts.

    Args:
        features: float ``[n, S]``.
        n_init: starts (each seeded from one ``numpy`` generator with ``seed``).
        max_iterations: Lloyd iterations per start at most (a start ends when no
            sample changes cluster).
        seed: seed of the generator.

    Returns:
        float64 ``[2, S]`` centres.

    Raises:
        ValueError: fewer than two samples.
    """
    x = np.asarray(features, np.float64)
    n = len(x)
    if n < 2:
        raise ValueError(f"2-means needs at least 2 samples, got {n}")
    rng = np.random.default_rng(seed)
    total = x.sum(axis=0)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        first = x[rng.integers(n)]
        dist = ((x - first) ** 2).sum(axis=1)
        mass = dist.sum()
        second_centre = x[rng.choice(n, p=dist / mass)] if mass > 0 else x[rng.integers(n)]
        centres = np.stack([first, second_centre])
        assigned = None
        for _ in range(max_iterations):
            second = nearer_second(x, centres)
            if assigned is not None and np.array_equal(second, assigned):
                break
            assigned = second
            count = int(second.sum())
            if 0 < count < n:  # an emptied cluster keeps its centre
                s1 = second.astype(np.float64) @ x
                centres = np.stack([(total - s1) / (n - count), s1 / count])
        inertia = np.minimum(_sq_dist(x, centres[0]), _sq_dist(x, centres[1])).sum()
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    assert best is not None
    return best


def _sq_dist(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return np.asarray(((x - centre) ** 2).sum(axis=1))


def nearer_second(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``|x - c1|^2 < |x - c0|^2``, as one projection: ``2 x.(c1 - c0) > |c1|^2 - |c0|^2``."""
    return np.asarray(2.0 * (x @ (centres[1] - centres[0])) > (centres[1] @ centres[1] - centres[0] @ centres[0]))


@dataclass(frozen=True)
class PCAKMeans:
    """PCA-KMeans with its parameters fixed.

    Attributes:
        block: ``h``.
        mean: ``[h * h]`` block mean of the difference image.
        vectors: ``[h * h][S]`` eigenvectors (rows = neighbourhood offsets).
        no_change: ``[S]`` centre of the no-change cluster.
        change: ``[S]`` centre of the change cluster.
        standardization: whole-scene band statistics applied first, or ``None``.
    """

    block: int
    mean: tuple[float, ...]
    vectors: tuple[tuple[float, ...], ...]
    no_change: tuple[float, ...]
    change: tuple[float, ...]
    standardization: Standardization | None = None
    name: str = "pca_kmeans"

    @property
    def support(self) -> Support:
        """A neighbourhood of the block's reach."""
        return Support("neighbourhood", max(offsets(self.block)))

    def features(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[S, h, w]`` features of one window (inputs ``[C, h, w]`` in [0, 1])."""
        d = difference_image(t1, t2, valid, self.standardization)
        return neighbourhood_features(d, self.block, np.asarray(self.mean), np.asarray(self.vectors))

    def probability(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``d_n / (d_n + d_c)``: float32 ``[h, w]``, above 0.5 where nearer the change centre."""
        feats = self.features(t1, t2, valid)
        d_n = np.zeros(feats.shape[1:], np.float32)
        d_c = np.zeros(feats.shape[1:], np.float32)
        for j in range(feats.shape[0]):
            d_n += (feats[j] - np.float32(self.no_change[j])) ** 2
            d_c += (feats[j] - np.float32(self.change[j])) ** 2
        np.sqrt(d_n, out=d_n)
        np.sqrt(d_c, out=d_c)
        total = d_n + d_c
        p = np.full(total.shape, 0.5, np.float32)
        np.divide(d_n, total, out=p, where=total > 0)
        return p

    def to_json(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {"comparator": self.name, "block": self.block, "mean": list(self.mean),
                "vectors": [list(r) for r in self.vectors], "no_change": list(self.no_change),
                "change": list(self.change),
                "standardization": self.standardization.to_json() if self.standardization else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PCAKMeans:
        """Inverse of :meth:`to_json`."""
        std = data.get("standardization")
        return cls(block=int(data["block"]), mean=tuple(float(v) for v in data["mean"]),
                   vectors=tuple(tuple(float(v) for v in r) for r in data["vectors"]),
                   no_change=tuple(float(v) for v in data["no_change"]),
                   change=tuple(float(v) for v in data["change"]),
                   standardization=Standardization.from_json(std) if std else None)
