"""Whole-scene statistics as sums of per-block parts that do not depend on the blocks.

A fit reads the scene block by block (in Dask tasks) and adds up what each block
returns. For the result to be the same for any block size, worker count or retry:

- sums are taken per *cell* of a fixed global grid (cells never straddle blocks: the
  block size is a multiple of the cell size), each over a contiguous copy of the
  cell's values, and the cells' sums are added with :func:`math.fsum` (exactly
  rounded, so the order of the cells does not matter);
- a sample is a fixed lattice of pixels anchored at the scene origin, gathered in
  raster order, thinned to the cap by position only.

Everything here is pure numpy on one block's arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from s2c_batch.kernels.raster.tiling import Window


def cells_of(core: Window, cell: int) -> list[Window]:
    """The cells of the global ``cell`` grid that intersect ``core``, clipped to it.

    Args:
        core: a block core in scene coordinates.
        cell: side of a grid cell.

    Example:
        >>> [(w.row, w.col, w.height, w.width) for w in cells_of(Window(0, 4, 4, 6), 4)]
        [(0, 4, 4, 4), (0, 8, 4, 2)]
    """
    out = []
    for r in range((core.row // cell) * cell, core.row_stop, cell):
        for c in range((core.col // cell) * cell, core.col_stop, cell):
            part = Window(r, c, cell, cell).intersection(core)
            if part is not None:
                out.append(part)
    return out


@dataclass(frozen=True)
class MomentSums:
    """Sums over valid pixels: count, per-band sum and sum of squares.

    Attributes:
        count: valid pixels.
        s1: float64 ``[B]`` sums of each band.
        s2: float64 ``[B]`` sums of squares.
    """

    count: int
    s1: np.ndarray
    s2: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """float64 ``[B]`` band means."""
        return self.s1 / self.count

    @property
    def std(self) -> np.ndarray:
        """float64 ``[B]`` population standard deviations."""
        mean = self.mean
        return np.sqrt(np.maximum(self.s2 / self.count - mean * mean, 0.0))


def moment_parts(x: np.ndarray, valid: np.ndarray, window: Window, core: Window, cell: int) -> list[MomentSums]:
    """Per-cell moment sums of the valid pixels of ``core``.

    Args:
        x: float ``[B, h, w]`` over ``window``.
        valid: bool ``[h, w]``.
        window: what ``x`` covers (``core`` plus a halo).
        core: the pixels this block accounts for.
        cell: the global cell size.

    Returns:
        One :class:`MomentSums` per cell of ``core`` with at least one valid pixel.
    """
    parts = []
    for part in cells_of(core, cell):
        rows, cols = part.slices((window.row, window.col))
        ok = valid[rows, cols]
        n = int(ok.sum())
        if n == 0:
            continue
        values = np.ascontiguousarray(x[:, rows, cols][:, ok], dtype=np.float64)  # [B, n]
        parts.append(MomentSums(n, values.sum(axis=1), (values * values).sum(axis=1)))
    return parts


def add_moments(parts: Iterable[MomentSums], bands: int) -> MomentSums:
    """Exactly rounded sum of moment parts (any order gives the same result)."""
    parts = list(parts)
    count = sum(p.count for p in parts)
    s1 = np.array([math.fsum(p.s1[b] for p in parts) for b in range(bands)], np.float64)
    s2 = np.array([math.fsum(p.s2[b] for p in parts) for b in range(bands)], np.float64)
    return MomentSums(count, s1, s2)


@dataclass(frozen=True)
class CrossSums:
    """Sums of vectors and their outer products (for a covariance matrix).

    Attributes:
        count: vectors.
        s1: float64 ``[D]``.
        s2: float64 ``[D, D]``.
    """

    count: int
    s1: np.ndarray
    s2: np.ndarray

    def covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean [D], population covariance [D, D])``."""
        mean = self.s1 / self.count
        return mean, self.s2 / self.count - np.outer(mean, mean)


def cross_sums(vectors: np.ndarray) -> CrossSums:
    """Sums of ``[n, D]`` vectors in float64, in a fixed order (no BLAS).

    The products are summed with ``np.einsum`` (its own loops, the same order for
    the same input), not a matrix product whose blocking may depend on the library.
    """
    v = np.ascontiguousarray(vectors, dtype=np.float64)
    return CrossSums(len(v), v.sum(axis=0), np.einsum("ni,nj->ij", v, v, optimize=False))


def add_cross(parts: Sequence[CrossSums], dim: int) -> CrossSums:
    """Exactly rounded sum of cross-sum parts."""
    count = sum(p.count for p in parts)
    s1 = np.array([math.fsum(p.s1[i] for p in parts) for i in range(dim)], np.float64)
    s2 = np.array([[math.fsum(p.s2[i, j] for p in parts) for j in range(dim)] for i in range(dim)], np.float64)
    return CrossSums(count, s1, s2)


def lattice_step(valid_pixels: int, sample_size: int) -> int:
    """Spacing of the sample lattice: 1 (every valid pixel) when they fit in the sample.

    Otherwise ``ceil(sqrt(valid / sample_size))``, so the lattice holds about
    ``sample_size`` valid pixels or fewer.

    Example:
        >>> lattice_step(900, 1000), lattice_step(4_000_000, 1_000_000)
        (1, 2)
    """
    if valid_pixels <= sample_size:
        return 1
    return math.ceil(math.sqrt(valid_pixels / sample_size))


@dataclass(frozen=True)
class SamplePart:
    """The lattice pixels of one block: positions and feature values.

    Attributes:
        index: int64 ``[n]`` linear index ``row * width + col`` in the scene.
        values: float ``[n, F]``.
    """

    index: np.ndarray
    values: np.ndarray


def sample_part(features: np.ndarray, valid: np.ndarray, window: Window, core: Window, *,
                step: int, scene_width: int) -> SamplePart:
    """The valid lattice pixels of ``core`` (rows and columns divisible by ``step``).

    Args:
        features: float ``[F, h, w]`` over ``window``.
        valid: bool ``[h, w]``.
        window: what ``features`` covers.
        core: the pixels this block accounts for.
        step: lattice spacing (:func:`lattice_step`).
        scene_width: columns of the scene, for the linear index.
    """
    r0 = -(-core.row // step) * step
    c0 = -(-core.col // step) * step
    rows = np.arange(r0, core.row_stop, step)
    cols = np.arange(c0, core.col_stop, step)
    rr, cc = np.meshgrid(rows - window.row, cols - window.col, indexing="ij")
    ok = valid[rr, cc]
    values = features[:, rr[ok], cc[ok]].T
    index = (rr[ok] + window.row).astype(np.int64) * scene_width + (cc[ok] + window.col)
    return SamplePart(index, np.ascontiguousarray(values))


def gather_sample(parts: Sequence[SamplePart], sample_size: int) -> SamplePart:
    """All parts in raster order, thinned evenly to at most ``sample_size`` pixels."""
    if not parts:
        return SamplePart(np.zeros(0, np.int64), np.zeros((0, 0), np.float64))
    index = np.concatenate([p.index for p in parts])
    values = np.concatenate([p.values for p in parts])
    order = np.argsort(index, kind="stable")
    index, values = index[order], values[order]
    if len(index) > sample_size:
        keep = (np.arange(sample_size, dtype=np.int64) * len(index)) // sample_size
        index, values = index[keep], values[keep]
    return SamplePart(index, values)
