"""The shift between the dates per window: known shifts, low texture, masks, the summary."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from s2c_batch.kernels.raster.coregistration import (
    MIN_ISOTROPY,
    ShiftEstimate,
    luminance,
    measure_shift,
    summarise_shifts,
)


def _texture(seed: int, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(0, 40, shape), 1.2) + 120


@pytest.mark.parametrize("shift", [(0.4, 1.7), (3.0, -2.0), (-0.25, -0.5), (0.0, 0.0), (7.3, 11.8)])
def test_measure_shift__known_shifts_of_a_texture(shift: tuple[float, float]) -> None:
    t1 = _texture(0)
    t2 = ndimage.shift(t1, shift, order=3, mode="nearest") + np.random.default_rng(1).normal(0, 1, t1.shape)
    est = measure_shift(t1, t2, np.ones(t1.shape, bool))
    assert est.reason is None and est.confidence > 0.9 and est.isotropy > 0.5
    assert abs(est.shift[0] - shift[0]) < 0.05 and abs(est.shift[1] - shift[1]) < 0.05, est


def test_measure_shift__sign_t1_pixel_shows_at_t2_plus_shift() -> None:
    t1 = np.zeros((128, 128))
    t1[60:68, 40:48] = 1
    t1 = ndimage.gaussian_filter(t1, 2) + ndimage.gaussian_filter(np.random.default_rng(0).normal(size=t1.shape), 1)
    t2 = np.roll(t1, (3, -2), axis=(0, 1))  # t1's (r, c) is t2's (r + 3, c - 2)
    est = measure_shift(t1, t2, np.ones(t1.shape, bool))
    assert est.shift == pytest.approx((3.0, -2.0), abs=0.02)


@pytest.mark.parametrize(("name", "make"), [
    ("water", lambda rng: (120 + rng.normal(0, 1, (256, 256)), 120 + rng.normal(0, 1, (256, 256)))),
    ("ramp", lambda rng: (np.add.outer(np.arange(256.0), np.zeros(256)) + rng.normal(0, 1, (256, 256)),
                          np.add.outer(np.arange(256.0), np.zeros(256)) + rng.normal(0, 1, (256, 256)))),
])
def test_measure_shift__low_texture_has_low_confidence(name: str, make) -> None:  # noqa: ANN001
    t1, t2 = make(np.random.default_rng(3))
    est = measure_shift(t1, t2, np.ones(t1.shape, bool))
    assert est.confidence < 0.1, f"{name}: {est}"


def test_measure_shift__texture_in_one_direction_is_left_out() -> None:
    rows = np.sin(np.arange(256) * 0.3)[:, None] * 30 + np.zeros((1, 256))
    est = measure_shift(rows, np.roll(rows, 2, axis=0), np.ones(rows.shape, bool))
    assert est.isotropy < MIN_ISOTROPY and est.reason == "texture in one direction only"


def test_measure_shift__a_shared_plane_wave_under_independent_noise_is_one_directional() -> None:
    yy, xx = np.mgrid[0:128, 0:128]
    wave = np.sin(yy / 7 + xx / 11) * 60 + 120  # what testutils.make_pair draws
    rng = np.random.default_rng(0)
    est = measure_shift(wave + rng.normal(0, 6, wave.shape), wave + rng.normal(0, 6, wave.shape),
                        np.ones(wave.shape, bool))
    assert est.confidence > 0.5 and est.isotropy < MIN_ISOTROPY, est  # well correlated, yet unusable
    assert est.reason == "texture in one direction only"


def test_measure_shift__masked_pixels_and_small_windows() -> None:
    t1 = _texture(5)
    t2 = ndimage.shift(t1, (1.3, -0.6), order=3, mode="nearest")
    valid = np.ones(t1.shape, bool)
    valid[:, :70] = False  # a collar in one date
    t2[:, :70] = 0  # its pixels are meaningless
    est = measure_shift(t1, t2, valid)
    assert est.reason is None and est.shift == pytest.approx((1.3, -0.6), abs=0.08)
    assert 0.5 < est.observed < 0.7
    valid[:, :160] = False
    assert measure_shift(t1, t2, valid).reason == "too few observed pixels"
    assert measure_shift(t1[:40, :40], t2[:40, :40], valid[:40, :40]).reason == "window smaller than 64 px"


def test_summarise_shifts__median_of_confident_windows_spread_and_limit() -> None:
    good = [ShiftEstimate((0.4 + d, 1.7 - d), 0.9, 0.5, 1.0) for d in (-0.04, 0.0, 0.02, 0.05)]
    bad = [ShiftEstimate((20.0, -20.0), 0.05, 0.5, 1.0),  # water: low confidence
           ShiftEstimate((5.0, 5.0), 0.95, 0.01, 1.0, "texture in one direction only"),
           ShiftEstimate((math.nan, math.nan), 0.0, 0.0, 0.1, "too few observed pixels")]
    s = summarise_shifts(good + bad, min_confidence=0.3, max_shift_px=0.5)
    assert s.used == (0, 1, 2, 3) and s.median == pytest.approx((0.41, 1.69))
    assert s.spread is not None and max(s.spread) < 0.1
    assert s.above == (0, 1, 2, 3) and s.above_limit and s.length == pytest.approx(math.hypot(0.41, 1.69))
    calm = summarise_shifts(good, min_confidence=0.3, max_shift_px=5)
    assert calm.above == () and not calm.above_limit
    none = summarise_shifts(bad, min_confidence=0.3, max_shift_px=0.5)
    assert none.median is None and none.used == () and not none.above_limit


def test_measure_shift__real_aerial_scene(shared_data: Path) -> None:
    import rasterio

    with rasterio.open(shared_data / "rasterio_rasterio/tests/data/cogeo.tif") as src:
        t1 = luminance(src.read(window=((256, 768), (256, 768))))
    for shift in ((0.4, 1.7), (3.0, -2.0)):
        t2 = ndimage.shift(t1, shift, order=3, mode="nearest")
        est = measure_shift(t1, t2, np.ones(t1.shape, bool))
        assert abs(est.shift[0] - shift[0]) < 0.1 and abs(est.shift[1] - shift[1]) < 0.1, est
