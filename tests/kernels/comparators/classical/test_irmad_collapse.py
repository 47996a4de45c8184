"""IR-MAD whose reweighting collapses on a real pair: the iteration stops, not converged, instead of failing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2c_batch.kernels.comparators.classical.irmad import fit_irmad
from s2c_batch.pipeline.learn.dataset import open_dataset, read_pair

LEVIR_SAMPLES = "wgcban_ChangeFormer/samples_LEVIR"


def test_fit_irmad__collapsing_weights_keep_the_last_fit(shared_data: Path) -> None:
    """LEVIR-CD crop test_102_0512_0000 (RGB, a building site over most of it): after some 40 iterations
    no pixel keeps a no-change weight, which divided by zero and failed as 'singular'."""
    pair = next(p for p in open_dataset(shared_data / LEVIR_SAMPLES).pairs if p.name == "test_102_0512_0000")
    a, b, _ = read_pair(pair)
    x, y = a.reshape(3, -1).T / 255.0, b.reshape(3, -1).T / 255.0
    fit = fit_irmad(x, y)
    assert not fit.converged and 1 < fit.iterations < 100
    assert np.isfinite(fit.a).all() and np.isfinite(fit.b).all() and np.isfinite(fit.rho).all()
    again = fit_irmad(x, y, max_iterations=fit.iterations)
    np.testing.assert_array_equal(again.rho, fit.rho)
