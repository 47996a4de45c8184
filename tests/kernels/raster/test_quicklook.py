"""Quicklook pixels: stretch, overlay colours, panel layout, decimation."""

from __future__ import annotations

import numpy as np

from s2c_batch.kernels.raster.quicklook import (
    CHANGE_RGB,
    UNKNOWN_RGB,
    change_overlay,
    class_colours,
    decimation,
    side_by_side,
    stretch,
)


def test_stretch__percentiles_to_bytes_and_invalid_black() -> None:
    data = np.stack([np.tile(np.arange(100, dtype=np.uint16), (10, 1))] * 3)
    valid = np.ones((10, 100), bool)
    valid[:, :5] = False
    rgb = stretch(data, valid)
    assert rgb.shape == (10, 100, 3) and rgb.dtype == np.uint8
    assert (rgb[:, :5] == 0).all()
    assert rgb[0, 6, 0] == 0 and rgb[0, 99, 0] == 255


def test_stretch__single_band_is_grey() -> None:
    rgb = stretch(np.arange(16, dtype=np.float32).reshape(1, 4, 4), np.ones((4, 4), bool))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_change_overlay__class_colours_red_without_classes_and_unknown_in_its_own_colour() -> None:
    base = np.full((2, 2, 3), 200, np.uint8)
    mask = np.array([[1, 0], [255, 1]], np.uint8)
    plain = change_overlay(base, mask)
    assert tuple(plain[0, 0]) == CHANGE_RGB and tuple(plain[1, 0]) == UNKNOWN_RGB
    assert UNKNOWN_RGB != CHANGE_RGB and UNKNOWN_RGB not in {tuple(c) for c in class_colours(20)}
    assert plain[0, 1, 0] == plain[0, 1, 1] < 200  # dimmed grey
    classes = np.array([[2, 0], [0, 3]], np.uint8)
    coloured = change_overlay(base, mask, classes, n_classes=4)
    palette = class_colours(4)
    assert (coloured[0, 0] == palette[2]).all() and (coloured[1, 1] == palette[3]).all()
    assert tuple(coloured[1, 0]) == UNKNOWN_RGB


def test_side_by_side__gaps_and_padding() -> None:
    out = side_by_side([np.zeros((3, 2, 3), np.uint8), np.zeros((2, 4, 3), np.uint8)], gap=1)
    assert out.shape == (3, 7, 3)
    assert (out[:, 2] == 255).all() and (out[2, 3:] == 255).all()


def test_decimation__fits_the_longest_side() -> None:
    assert decimation((1100, 1300), 512) == (3, (367, 434))
    assert decimation((100, 50), 512) == (1, (100, 50))
