"""Otsu's threshold on a histogram of the encoded change probability.

``model.threshold: otsu`` chooses the mask threshold from the histogram of
``change_prob`` (levels 0..254, 255 = nodata) over the valid pixels of the whole
scene: the level ``k`` that maximises the between-class variance of the two
classes ``level < k`` (no change) and ``level >= k`` (change) (Otsu 1979, IEEE
SMC 9(1)). The histogram is a sum of per-block histograms, so the threshold is
the same for any block size or worker count.
"""

from __future__ import annotations

import numpy as np

#: Levels of the encoded change probability (``round(254 p)``); 255 is nodata.
LEVELS = 255


def level_histogram(encoded: np.ndarray) -> np.ndarray:
    """Histogram of encoded probabilities, nodata left out.

    Args:
        encoded: uint8 ``[h, w]`` ``change_prob`` (255 = nodata).

    Returns:
        int64 ``[255]``: pixels per level 0..254.
    """
    counts = np.bincount(np.asarray(encoded, np.uint8).ravel(), minlength=256)
    return counts[:LEVELS].astype(np.int64)


def otsu_level(hist: np.ndarray) -> int:
    """The first changed level by Otsu's method.

    Args:
        hist: ``[255]`` pixel counts per level.

    Returns:
        ``k`` in 1..254: pixels with level ``>= k`` are changed. Ties between
        thresholds go to the lowest ``k``; a histogram with a single occupied
        level gives the level above it (nothing changed), 255 when that level is 254.

    Raises:
        ValueError: the histogram is empty or has another length.

    Example:
        >>> h = np.zeros(255, np.int64); h[10] = 90; h[200] = 10
        >>> otsu_level(h)
        11
    """
    hist = np.asarray(hist, np.float64)
    if hist.shape != (LEVELS,):
        raise ValueError(f"expected a histogram of {LEVELS} levels, got shape {hist.shape}")
    total = hist.sum()
    if total <= 0:
        raise ValueError("the histogram holds no pixel: there is no valid pixel to threshold")
    occupied = np.flatnonzero(hist)
    if len(occupied) == 1:
        return int(occupied[0]) + 1
    levels = np.arange(LEVELS, dtype=np.float64)
    w0 = np.cumsum(hist)[:-1]  # pixels below k = 1..254
    s0 = np.cumsum(hist * levels)[:-1]
    w1 = total - w0
    mu_total = (hist * levels).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = s0 / w0
        m1 = (mu_total - s0) / w1
        between = w0 * w1 * (m0 - m1) ** 2
    between[(w0 == 0) | (w1 == 0)] = -1.0
    return int(np.argmax(between)) + 1
