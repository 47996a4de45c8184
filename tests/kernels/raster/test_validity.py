"""Mask rules: which values of a quality layer mean "not observed"."""

from __future__ import annotations

import numpy as np
import pytest

from s2c_batch.kernels.raster.validity import MASK_PRESETS, MaskRule, mask_rule, observed


def test_observed__default_rule_is_any_nonzero_value() -> None:
    assert observed(np.array([[0, 1, 255]], np.uint8), MaskRule()).tolist() == [[True, False, False]]
    assert observed(np.array([0.0, 0.5, np.nan]), MaskRule()).tolist() == [True, False, False]


def test_observed__listed_values_only() -> None:
    rule = mask_rule(values=(3.0, 8.0))
    assert observed(np.arange(10), rule).tolist() == [i not in (3, 8) for i in range(10)]


def test_observed__s2_scl_leaves_out_nodata_saturated_shadow_cloud_cirrus_snow() -> None:
    got = observed(np.arange(12, dtype=np.uint8), MASK_PRESETS["s2_scl"])
    assert [i for i in range(12) if got[i]] == [2, 4, 5, 6, 7]


def test_observed__landsat_qa_pixel_tests_bits_0_to_5() -> None:
    values = np.array([0, 1 << 6, 1 << 7, 1, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, (1 << 3) | (1 << 6), 0xFF00],
                      np.uint16)
    got = observed(values, MASK_PRESETS["landsat_qa_pixel"])
    assert got.tolist() == [True, True, True, False, False, False, False, False, False, False, True]
    with pytest.raises(ValueError, match="needs an integer mask"):
        observed(values.astype(np.float32), MASK_PRESETS["landsat_qa_pixel"])


def test_mask_rule__one_of_values_or_preset() -> None:
    assert mask_rule().name == "nonzero" and mask_rule(preset="s2_scl").name == "s2_scl"
    with pytest.raises(ValueError, match="not both"):
        mask_rule(values=(1.0,), preset="s2_scl")
    with pytest.raises(ValueError, match=r"unknown mask preset 'fmask'; valid ones are \['landsat_qa_pixel', "):
        mask_rule(preset="fmask")
