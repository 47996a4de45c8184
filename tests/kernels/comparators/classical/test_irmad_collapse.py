"""IR-MAD whose reweighting collapses on a real pair falls back to plain MAD instead of failing or overflowing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2c_batch.kernels.comparators.classical.irmad import IRMAD, fit_irmad
from s2c_batch.pipeline.learn.dataset import open_dataset, read_pair

LEVIR_SAMPLES = "wgcban_ChangeFormer/samples_LEVIR"


def _pair(shared_data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    pair = next(p for p in open_dataset(shared_data / LEVIR_SAMPLES).pairs if p.name == name)
    a, b, _ = read_pair(pair)
    return a.reshape(3, -1).T / 255.0, b.reshape(3, -1).T / 255.0


@pytest.mark.parametrize(("name", "why"), [
    ("test_102_0512_0000", "after some 40 iterations no pixel keeps a no-change weight: the next CCA divided by 0"),
    ("test_2_0000_0000", "the weights gather on some 250 pixels, two correlations reach 1, the statistic overflows"),
])
def test_fit_irmad__a_collapsing_reweighting_falls_back_to_mad(shared_data: Path, name: str, why: str) -> None:
    """LEVIR-CD RGB crops whose three bands correlate at 0.99 and whose dates differ widely."""
    x, y = _pair(shared_data, name)
    fit = fit_irmad(x, y)
    mad = fit_irmad(x, y, max_iterations=1)
    assert (fit.iterations, fit.converged) == (1, False), why
    for key in ("a", "b", "mean_t1", "mean_t2", "rho"):
        np.testing.assert_array_equal(getattr(fit, key), getattr(mad, key))
    s = IRMAD.from_fit(fit, 1.0, None).magnitude(x.T.reshape(3, 256, 256).astype(np.float32),
                                                 y.T.reshape(3, 256, 256).astype(np.float32),
                                                 np.ones((256, 256), bool))
    assert np.isfinite(s).all()


def test_fit_irmad__a_converging_pair_is_unchanged(shared_data: Path) -> None:
    x, y = _pair(shared_data, "test_7_0256_0512")
    fit = fit_irmad(x, y)
    assert fit.converged and fit.iterations > 50
