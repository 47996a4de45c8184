"""From/to counts of a block: exact against a bincount of the whole array, weighted by row areas."""

from __future__ import annotations

import numpy as np

from s2c_batch.kernels.raster.transitions import largest_transitions, transition_counts


def test_transition_counts__blocks_add_up_to_the_whole() -> None:
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 1, 255], np.uint8), size=(40, 30))
    c1, c2 = rng.integers(0, 5, size=(2, 40, 30)).astype(np.uint8)
    changed = mask == 1
    want = np.zeros((5, 5), np.int64)
    np.add.at(want, (c1[changed], c2[changed]), 1)
    total = np.zeros((5, 5), np.int64)
    for r in (0, 16, 32):
        block = slice(r, r + 16)
        pixels, area = transition_counts(mask[block], c1[block], c2[block], n_classes=5)
        total += pixels
        np.testing.assert_array_equal(area, pixels)
    np.testing.assert_array_equal(total, want)
    assert total.sum() == changed.sum()


def test_transition_counts__row_areas_weight_each_pixel() -> None:
    mask = np.array([[1, 1], [1, 0]], np.uint8)
    c = np.array([[0, 1], [1, 1]], np.uint8)
    pixels, area = transition_counts(mask, c, c, n_classes=2, row_areas=np.array([2.0, 3.0]))
    assert pixels.tolist() == [[1, 0], [0, 2]]
    assert area.tolist() == [[2.0, 0.0], [0.0, 5.0]]


def test_transition_counts__classes_beyond_the_vocabulary_go_to_the_last() -> None:
    mask = np.ones((1, 2), np.uint8)
    pixels, _ = transition_counts(mask, np.array([[0, 9]], np.uint8), np.array([[9, 0]], np.uint8), n_classes=3)
    assert pixels.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]


def test_largest_transitions__order_ties_and_empty_cells() -> None:
    area = np.array([[0.0, 3.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 7.0]])
    assert largest_transitions(area, 10) == [(2, 2), (0, 1), (1, 0), (0, 2)]
    assert largest_transitions(area, 1) == [(2, 2)]
