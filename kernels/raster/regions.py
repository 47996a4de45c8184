"""Connected changed regions of one block, and merging them across block seams.

Pure numpy (and ``scipy.ndimage`` for labelling); no files, no dask. The
pipeline (:mod:`s2c_batch.pipeline.products.polygons`) vectorises each block's labels and
uses these functions to glue the pieces of a region that crosses block borders.

Connectivity is 4 (edge neighbours) everywhere: in labelling, in seam matching
and in the polygons GDAL traces, so a region is one polygon (with holes) and two
pieces across a seam belong together exactly when they share a pixel edge.

Attributes merge exactly: pixel counts, probability sums and class histograms
add up, so a merged region's mean probability is the pixel-weighted (area-
weighted) mean of its pieces and its from/to class is the mode over all its pixels.

Example:
    >>> mask = np.array([[1, 1, 0, 1],
    ...                  [0, 1, 0, 1]], dtype=np.uint8)
    >>> labels, n = label_regions(mask)
    >>> labels.tolist(), n
    ([[1, 1, 0, 2], [0, 1, 0, 2]], 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from s2c_batch.kernels.raster.encode import NODATA

#: 4-connectivity structuring element.
_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def label_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the 4-connected regions of changed pixels.

    Args:
        mask: uint8 ``[h, w]`` change mask (1 = changed; 0 and 255 = not).

    Returns:
        ``(labels, n)``: int32 ``[h, w]`` with 0 outside regions and ``1..n``
        inside, numbered in raster order of each region's first pixel.
    """
    labels, n = ndimage.label(mask == 1, structure=_FOUR)
    return labels.astype(np.int32, copy=False), int(n)


@dataclass(frozen=True)
class RegionStats:
    """Additive attributes of ``n`` regions (row ``i`` = label ``i + 1``).

    Attributes:
        pixels: int64 ``[n]`` pixel count.
        prob_sum: int64 ``[n]`` sum of the encoded probability (``round(254 p)``).
        hist_t1: int64 ``[n, K]`` class histogram of t1, or ``None`` without class maps.
        hist_t2: int64 ``[n, K]`` class histogram of t2, or ``None``.
    """

    pixels: np.ndarray
    prob_sum: np.ndarray
    hist_t1: np.ndarray | None = None
    hist_t2: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def mean_prob(self) -> np.ndarray:
        """float64 ``[n]`` mean change probability in [0, 1]."""
        return self.prob_sum / (254.0 * np.maximum(self.pixels, 1))

    def classes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Most frequent class of t1 and of t2 per region (ties: lowest index), int64 ``[n]`` each."""
        if self.hist_t1 is None or self.hist_t2 is None:
            return None
        return self.hist_t1.argmax(axis=1), self.hist_t2.argmax(axis=1)


def region_stats(
    labels: np.ndarray,
    n: int,
    prob: np.ndarray,
    class_t1: np.ndarray | None = None,
    class_t2: np.ndarray | None = None,
    *,
    n_classes: int = 0,
) -> RegionStats:
    """Pixel count, probability sum and class histograms of every labelled region.

    Args:
        labels: int32 ``[h, w]`` from :func:`label_regions`.
        n: number of regions.
        prob: uint8 ``[h, w]`` encoded probability (255 = nodata, never inside a region).
        class_t1: uint8 ``[h, w]`` class map of t1, or ``None``.
        class_t2: uint8 ``[h, w]`` class map of t2, or ``None``.
        n_classes: histogram width ``K`` (classes >= K are counted in bin K - 1).

    Returns:
        The stats of labels ``1..n``.
    """
    flat = labels.ravel()
    inside = flat > 0
    idx = flat[inside].astype(np.int64) - 1
    pixels = np.bincount(idx, minlength=n).astype(np.int64)
    p = prob.ravel()[inside].astype(np.int64)
    p[p == NODATA] = 0
    prob_sum = np.bincount(idx, weights=p, minlength=n).round().astype(np.int64)
    if class_t1 is None or class_t2 is None:
        return RegionStats(pixels, prob_sum)
    k = max(1, n_classes)
    hists = []
    for cmap in (class_t1, class_t2):
        c = np.minimum(cmap.ravel()[inside].astype(np.int64), k - 1)
        hists.append(np.bincount(idx * k + c, minlength=n * k).reshape(n, k).astype(np.int64))
    return RegionStats(pixels, prob_sum, hists[0], hists[1])


def concat_stats(parts: list[RegionStats]) -> RegionStats:
    """Stack the stats of several blocks (row order = order of ``parts``)."""
    with_classes = bool(parts) and all(p.hist_t1 is not None for p in parts)
    if not parts:
        return RegionStats(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return RegionStats(
        np.concatenate([p.pixels for p in parts]),
        np.concatenate([p.prob_sum for p in parts]),
        np.concatenate([p.hist_t1 for p in parts]) if with_classes else None,
        np.concatenate([p.hist_t2 for p in parts]) if with_classes else None,
    )


def seam_pairs(edge_a: np.ndarray, edge_b: np.ndarray) -> np.ndarray:
    """Label pairs that touch across a seam between two blocks.

    Args:
        edge_a: int ``[L]`` labels of the last row (or column) of one block.
        edge_b: int ``[L]`` labels of the first row (or column) of the next block,
            pixel for pixel across the seam.

    Returns:
        int64 ``[M, 2]`` unique ``(label_a, label_b)`` pairs, both > 0.

    Example:
        >>> seam_pairs(np.array([1, 1, 0, 2]), np.array([3, 3, 0, 3])).tolist()
        [[1, 3], [2, 3]]
    """
    if edge_a.shape != edge_b.shape:
        raise ValueError(f"seam edges differ in length: {edge_a.shape} vs {edge_b.shape}")
    both = (edge_a > 0) & (edge_b > 0)
    pairs = np.stack([edge_a[both], edge_b[both]], axis=1).astype(np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def group_ids(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected groups of ``n`` items linked by ``pairs`` (union-find).

    Args:
        n: number of items ``0..n-1``.
        pairs: int ``[M, 2]`` links between items.

    Returns:
        int64 ``[n]``: a group id per item, ``0..G-1`` numbered by each group's
        smallest item.

    Example:
        >>> group_ids(5, np.array([[0, 3], [3, 4]])).tolist()
        [0, 1, 2, 0, 0]
    """
    parent = np.arange(n, dtype=np.int64)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = int(parent[root])
        while parent[i] != root:
            parent[i], i = root, int(parent[i])
        return root

    for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, ids = np.unique(roots, return_inverse=True)
    return ids.astype(np.int64)


def merge_stats(stats: RegionStats, groups: np.ndarray) -> RegionStats:
    """Sum the stats of pieces that form one region.

    Args:
        stats: stats of ``N`` pieces.
        groups: int ``[N]`` group id of each piece, ``0..G-1``.

    Returns:
        The stats of the ``G`` merged regions.
    """
    g = int(groups.max()) + 1 if len(groups) else 0

    def add(x: np.ndarray) -> np.ndarray:
        out = np.zeros((g, *x.shape[1:]), np.int64)
        np.add.at(out, groups, x)
        return out

    return RegionStats(
        add(stats.pixels), add(stats.prob_sum),
        None if stats.hist_t1 is None else add(stats.hist_t1),
        None if stats.hist_t2 is None else add(stats.hist_t2),
    )
