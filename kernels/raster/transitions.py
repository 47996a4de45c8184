"""From/to counts of one block: the changed pixels per (class at t1, class at t2).

Pure numpy. The pipeline (:mod:`s2c_batch.pipeline.products.transitions`) counts each
block as soon as it is written and adds the blocks up: pixel counts add exactly, and
areas are the counts weighted by each row's pixel area (the same for every row of a
projected grid), so no whole-scene array is ever built.

Example:
    >>> mask = np.array([[1, 1, 0], [255, 1, 1]], np.uint8)
    >>> c1 = np.array([[0, 0, 1], [255, 2, 2]], np.uint8)
    >>> c2 = np.array([[3, 3, 1], [255, 3, 2]], np.uint8)
    >>> pixels, _ = transition_counts(mask, c1, c2, n_classes=4)
    >>> {(int(a), int(b)): int(pixels[a, b]) for a, b in zip(*np.nonzero(pixels))}
    {(0, 3): 2, (2, 2): 1, (2, 3): 1}
"""

from __future__ import annotations

import numpy as np


def transition_counts(
    mask: np.ndarray,
    class_t1: np.ndarray,
    class_t2: np.ndarray,
    *,
    n_classes: int,
    row_areas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Changed pixels and their area per (class at t1, class at t2) in one block.

    Args:
        mask: uint8 ``[h, w]`` change mask (1 = changed; 0 and 255 are not counted).
        class_t1: uint8 ``[h, w]`` class of t1 (index in the vocabulary).
        class_t2: uint8 ``[h, w]`` class of t2.
        n_classes: the vocabulary's size ``K``; a class index >= K is counted in K - 1.
        row_areas: float64 ``[h]`` ground area of one pixel of each row in m2; ``None`` = 1.

    Returns:
        ``(pixels, area)``: int64 and float64 ``[K, K]``, rows = class at t1, columns = class at t2.
    """
    k = max(1, n_classes)
    changed = mask == 1
    c1 = np.minimum(class_t1[changed].astype(np.int64), k - 1)
    c2 = np.minimum(class_t2[changed].astype(np.int64), k - 1)
    index = c1 * k + c2
    pixels = np.bincount(index, minlength=k * k).reshape(k, k).astype(np.int64)
    if row_areas is None:
        return pixels, pixels.astype(np.float64)
    rows = np.nonzero(changed)[0]
    area = np.bincount(index, weights=np.asarray(row_areas, np.float64)[rows], minlength=k * k).reshape(k, k)
    return pixels, area


def largest_transitions(area: np.ndarray, n: int = 10) -> list[tuple[int, int]]:
    """The ``n`` (from, to) cells of a transition matrix with the largest areas, largest first.

    Ties are broken by position (row-major), and empty cells are never listed.

    Example:
        >>> largest_transitions(np.array([[0.0, 5.0], [2.0, 5.0]]), 2)
        [(0, 1), (1, 1)]
    """
    flat = np.asarray(area, np.float64).ravel()
    order = np.argsort(-flat, kind="stable")
    k = area.shape[1]
    return [(int(i // k), int(i % k)) for i in order[:n] if flat[i] > 0]
