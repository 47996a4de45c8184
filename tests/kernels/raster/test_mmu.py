"""Minimum mapping unit of a block: pieces measured by row areas, small regions cleared, nodata kept."""

from __future__ import annotations

import numpy as np

from s2c_batch.kernels.raster.mmu import clear_labels, piece_areas, small_regions
from s2c_batch.kernels.raster.regions import label_regions


def test_piece_areas__pixels_and_row_weighted_areas() -> None:
    mask = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1]], np.uint8)
    labels, n = label_regions(mask)
    pixels, area = piece_areas(labels, n, np.array([1.0, 2.0, 4.0]))
    assert pixels.tolist() == [2, 2, 1]
    assert area.tolist() == [2.0, 6.0, 4.0]


def test_clear_labels__drops_small_regions_and_keeps_nodata() -> None:
    mask = np.array([[1, 0, 1, 1], [255, 0, 1, 1], [1, 0, 0, 0]], np.uint8)
    labels, n = label_regions(mask)
    _, area = piece_areas(labels, n, np.full(3, 0.25))
    drop = small_regions(area, 0.5)  # regions of one pixel (0.25 m2) go, the 2 x 2 square stays
    out = clear_labels(mask, labels, drop)
    assert out.tolist() == [[0, 0, 1, 1], [255, 0, 1, 1], [0, 0, 0, 0]]
    assert mask[0, 0] == 1  # the input is left as it was


def test_small_regions__the_unit_itself_is_kept() -> None:
    assert small_regions(np.array([0.99, 1.0, 1.01]), 1.0).tolist() == [True, False, False]
