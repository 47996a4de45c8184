"""Whole images as the scene of a classical fit (``ImageStack``): one pair is the pair's scene, several one scene."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from s2c_batch.kernels.comparators.classical.fitting import FitRound, FitSettings, RoundRunner
from s2c_batch.kernels.comparators.classical.images import ALIGN, ImageStack
from s2c_batch.kernels.comparators.options import PCAKMeansOptions
from s2c_batch.kernels.comparators.registry import Family, comparator_names, fit_comparator
from s2c_batch.kernels.raster.tiling import Window

NAMES = ["cva", "pca_kmeans", "irmad"]


def scene(h: int, w: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four correlated bands per date, a gain between the dates, planted changes, a nodata corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([0.3 + 0.15 * np.sin(yy / (5 + k) + xx / (9 + 2 * k)) for k in range(4)])
    a = base + rng.normal(0, 0.02, base.shape)
    b = 0.8 * base + 0.05 + rng.normal(0, 0.02, base.shape)
    for r, q in ((5, 15), (h // 2, w // 2)):
        b[:, r : r + 12, q : q + 15] = rng.uniform(0.0, 1.0, (4, 1, 1))
    valid = np.ones((h, w), bool)
    valid[:6, :10] = False
    a, b = np.clip(a, 0, 1).astype(np.float32), np.clip(b, 0, 1).astype(np.float32)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    return a, b, valid


def block_runner(a: np.ndarray, b: np.ndarray, valid: np.ndarray, block: int) -> RoundRunner:
    """A round over blocks of ``block`` pixels with their halo (outside the scene invalid), as a run reads them."""
    h, w = valid.shape

    def run(fit_round: FitRound) -> list[Any]:
        r = fit_round.halo
        pa, pb = np.pad(a, ((0, 0), (r, r), (r, r))), np.pad(b, ((0, 0), (r, r), (r, r)))
        pv = np.pad(valid, r)
        parts: list[Any] = []
        for i in range(0, h, block):
            for j in range(0, w, block):
                core = Window(i, j, min(block, h - i), min(block, w - j))
                win = Window(i - r, j - r, core.height + 2 * r, core.width + 2 * r)
                sl = (slice(i, i + win.height), slice(j, j + win.width))
                parts.extend(fit_round.block(pa[(slice(None), *sl)], pb[(slice(None), *sl)], pv[sl], win, core))
        return parts

    return run


def _settings(name: str, shape: tuple[int, int], **kw: Any) -> FitSettings:
    base: dict[str, Any] = dict(comparator=name, bands=4, scene_shape=shape, cell=8, standardize=True,
                                fixed_threshold=False, pca_kmeans=PCAKMeansOptions(block=5, n_init=3))
    base.update(kw)
    return FitSettings(**base)


def test_image_stack__origins_are_aligned_and_pairs_never_touch() -> None:
    stack = ImageStack(((40, 30), (ALIGN + 1, 20), (7, 50)))
    assert stack.origins == (0, ALIGN, 3 * ALIGN)
    assert stack.scene_shape == (3 * ALIGN + 7, 50)
    assert all(ALIGN % k == 0 for k in range(1, 16))
    with pytest.raises(ValueError, match=r"at least one non-empty image"):
        ImageStack(())


def test_image_stack__a_wrong_shape_is_refused() -> None:
    a, b, valid = scene(20, 30)
    run = ImageStack(((20, 31),)).runner(lambda i: (a, b, valid))
    with pytest.raises(ValueError, match=r"pair 0 is 20x30, the stack expected 20x31"):
        fit_comparator(_settings("cva", (20, 31)), run)


@pytest.mark.parametrize("name", NAMES)
def test_image_stack__one_pair_is_the_fit_of_its_scene(name: str) -> None:
    """A stack of one image fits exactly what a run fits on that image as a scene (blocks of any size)."""
    a, b, valid = scene(90, 110)
    stack = ImageStack((valid.shape,))
    got = fit_comparator(_settings(name, stack.scene_shape), stack.runner(lambda i: (a, b, valid)))
    want = fit_comparator(_settings(name, valid.shape), block_runner(a, b, valid, 32))
    assert got == want


@pytest.mark.parametrize("name", NAMES)
def test_image_stack__two_pairs_are_one_scene_with_an_invalid_gap(name: str) -> None:
    """Two pairs stacked fit exactly what one scene of both fits, the second below rows of nodata.

    The scene's second pair starts on a row that divides by the cell (8) and the PCA block (5),
    as in the stack, and far enough below the first for no neighbourhood to reach across.
    """
    (a1, b1, v1), (a2, b2, v2) = scene(40, 110, seed=1), scene(50, 90, seed=2)
    gap = 40
    height = 40 + gap + 50
    a, b = np.zeros((4, height, 110), np.float32), np.zeros((4, height, 110), np.float32)
    valid = np.zeros((height, 110), bool)
    for x, y, v, row in ((a1, b1, v1, 0), (a2, b2, v2, 40 + gap)):
        a[:, row : row + v.shape[0], : v.shape[1]] = x
        b[:, row : row + v.shape[0], : v.shape[1]] = y
        valid[row : row + v.shape[0], : v.shape[1]] = v
    pairs = [(a1, b1, v1), (a2, b2, v2)]
    stack = ImageStack((v1.shape, v2.shape))
    got = fit_comparator(_settings(name, stack.scene_shape), stack.runner(lambda i: pairs[i]))
    want = fit_comparator(_settings(name, valid.shape), block_runner(a, b, valid, 40))
    assert got == want
    alone = fit_comparator(_settings(name, v1.shape), block_runner(a1, b1, v1, 40))
    assert got != alone  # the second pair counts


def test_image_stack__every_classical_comparator_is_covered() -> None:
    assert sorted(comparator_names(Family.CLASSICAL)) == sorted(NAMES)
