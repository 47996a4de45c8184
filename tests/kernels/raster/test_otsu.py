"""Otsu's level on the 255-level histogram of the encoded change probability."""

from __future__ import annotations

import numpy as np
import pytest

from s2c_batch.kernels.raster.otsu import level_histogram, otsu_level


def _numpy_otsu(hist: np.ndarray) -> int:
    """Exhaustive search written out: between-class variance of every split, the first maximum."""
    best, best_k = -1.0, None
    levels = np.arange(255)
    for k in range(1, 255):
        w0, w1 = hist[:k].sum(), hist[k:].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (hist[:k] * levels[:k]).sum() / w0
        m1 = (hist[k:] * levels[k:]).sum() / w1
        var = w0 * w1 * (m0 - m1) ** 2
        if var > best:
            best, best_k = var, k
    assert best_k is not None
    return best_k


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_otsu_level__equals_exhaustive_numpy_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(40, 12, 5000), rng.normal(180, 25, 400 * (seed + 1))])
    hist = np.bincount(np.clip(np.rint(values), 0, 254).astype(int), minlength=255)[:255]
    assert otsu_level(hist) == _numpy_otsu(hist.astype(np.float64))


def test_otsu_level__two_spikes_split_between_them() -> None:
    hist = np.zeros(255, np.int64)
    hist[10], hist[200] = 90, 10
    assert otsu_level(hist) == 11


def test_otsu_level__one_occupied_level_changes_nothing() -> None:
    hist = np.zeros(255, np.int64)
    hist[30] = 7
    assert otsu_level(hist) == 31
    hist[30], hist[254] = 0, 7
    assert otsu_level(hist) == 255


def test_otsu_level__empty_or_wrong_histogram_raises() -> None:
    with pytest.raises(ValueError, match="no pixel"):
        otsu_level(np.zeros(255))
    with pytest.raises(ValueError, match="255 levels"):
        otsu_level(np.ones(256))


def test_level_histogram__leaves_nodata_out() -> None:
    enc = np.array([[0, 0, 254, 255], [255, 7, 7, 7]], np.uint8)
    hist = level_histogram(enc)
    assert hist.shape == (255,) and hist.sum() == 6
    assert (hist[0], hist[7], hist[254]) == (2, 3, 1)
