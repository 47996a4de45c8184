"""The classical comparators (CVA, IR-MAD, PCA-KMeans) and their fit, against whole-scene numpy oracles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from s2c_batch.kernels.comparators.classical.common import Standardization
from s2c_batch.kernels.comparators.classical.cva import CVA, cva_probability
from s2c_batch.kernels.comparators.classical.fitting import FitRound, FitSettings, RoundRunner
from s2c_batch.kernels.comparators.classical.irmad import IRMAD, fit_irmad
from s2c_batch.kernels.comparators.classical.pca_kmeans import PCAKMeans, two_means
from s2c_batch.kernels.comparators.classical.statistics import gather_sample, lattice_step, sample_part
from s2c_batch.kernels.comparators.options import FitOptions, IRMADOptions, PCAKMeansOptions
from s2c_batch.kernels.comparators.registry import comparator_from_json, fit_comparator
from s2c_batch.kernels.errors import FitError
from s2c_batch.kernels.raster.tiling import Window

import comparator_oracles as oracles


def scene(h: int = 90, w: int = 110, c: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated multispectral dates in [0, 1] with a gain between them, planted changes and a nodata corner."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([0.3 + 0.15 * np.sin(yy / (5 + k) + xx / (9 + 2 * k)) for k in range(c)])
    a = base + rng.normal(0, 0.02, base.shape)
    b = 0.8 * base + 0.05 + rng.normal(0, 0.02, base.shape)  # another gain and offset
    for r, q in ((10, 15), (50, 70), (70, 20)):
        b[:, r : r + 12, q : q + 15] = rng.uniform(0.0, 1.0, (c, 1, 1))
    valid = np.ones((h, w), bool)
    valid[:8, :10] = False
    a, b = np.clip(a, 0, 1).astype(np.float32), np.clip(b, 0, 1).astype(np.float32)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    return a, b, valid


def block_runner(a: np.ndarray, b: np.ndarray, valid: np.ndarray, block: int) -> RoundRunner:
    """Runs a round over blocks of ``block`` pixels, reading a halo (outside = 0, invalid), like the pipeline."""
    h, w = valid.shape

    def run(fit_round: FitRound) -> list[Any]:
        r = fit_round.halo
        pa = np.pad(a, ((0, 0), (r, r), (r, r)))
        pb = np.pad(b, ((0, 0), (r, r), (r, r)))
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


def settings(comparator: str, a: np.ndarray, **kw: Any) -> FitSettings:
    base = dict(comparator=comparator, bands=a.shape[0], scene_shape=a.shape[1:], cell=16, standardize=False,
                fixed_threshold=False)
    base.update(kw)
    return FitSettings(**base)


def numpy_standardization(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    ma, sa = a[:, valid].astype(np.float64).mean(axis=1), a[:, valid].astype(np.float64).std(axis=1)
    mb, sb = b[:, valid].astype(np.float64).mean(axis=1), b[:, valid].astype(np.float64).std(axis=1)
    return ma, sa, mb, sb


def test_lattice_step__every_pixel_when_they_fit() -> None:
    assert lattice_step(100, 100) == 1
    assert lattice_step(101, 100) == 2
    assert lattice_step(10_000, 100) == 10


def test_gather_sample__raster_order_and_thinning_independent_of_blocks() -> None:
    feats = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    valid = np.ones((6, 7), bool)
    valid[2, 2] = False  # a lattice pixel (index 16) that is left out
    whole = gather_sample([sample_part(feats, valid, Window(0, 0, 6, 7), Window(0, 0, 6, 7), step=2,
                                       scene_width=7)], 100)
    parts = [sample_part(feats, valid, Window(0, 0, 6, 7), core, step=2, scene_width=7)
             for core in (Window(3, 4, 3, 3), Window(0, 0, 3, 7), Window(3, 0, 3, 4))]
    split = gather_sample(parts, 100)
    np.testing.assert_array_equal(whole.index, [0, 2, 4, 6, 14, 18, 20, 28, 30, 32, 34])
    np.testing.assert_array_equal(whole.index, split.index)
    np.testing.assert_array_equal(whole.values, split.values)
    assert whole.values.shape == (11, 2) and whole.values[1].tolist() == [2.0, 44.0]
    thin = gather_sample(parts, 4)
    np.testing.assert_array_equal(thin.index, whole.index[[0, 2, 5, 8]])


@pytest.mark.parametrize("block", [16, 32, 48, 200])
@pytest.mark.parametrize("comparator,kw", [
    ("cva", {"standardize": True}),
    ("cva", {}),
    ("irmad", {}),
    ("pca_kmeans", {"standardize": True}),
])
def test_fit_comparator__same_parameters_for_any_block_size(block: int, comparator: str, kw: dict[str, Any]) -> None:
    a, b, valid = scene()
    ref = fit_comparator(settings(comparator, a, **kw), block_runner(a, b, valid, 16))
    got = fit_comparator(settings(comparator, a, **kw), block_runner(a, b, valid, block))
    assert got.to_json() == ref.to_json()


def test_fit_comparator__cva_equals_numpy_oracle() -> None:
    a, b, valid = scene()
    fitted = fit_comparator(settings("cva", a, standardize=True), block_runner(a, b, valid, 32))
    ma, sa, mb, sb = numpy_standardization(a, b, valid)
    assert isinstance(fitted, CVA) and fitted.standardization is not None
    np.testing.assert_allclose(fitted.standardization.mean_t1, ma, rtol=1e-12)
    np.testing.assert_allclose(fitted.standardization.std_t2, sb, rtol=1e-9)
    za = (a - ma[:, None, None].astype(np.float32)) / sa[:, None, None].astype(np.float32)
    zb = (b - mb[:, None, None].astype(np.float32)) / sb[:, None, None].astype(np.float32)
    s = np.sqrt(((za - zb) ** 2).sum(axis=0))
    ref = float(np.percentile(s[valid], 99.9))
    assert fitted.reference == pytest.approx(ref, rel=1e-6)
    p = fitted.probability(a, b, valid)
    np.testing.assert_allclose(p[valid], np.minimum(1, s / ref)[valid], rtol=1e-5, atol=1e-6)


def test_fit_comparator__oracle_cva_fits_nothing() -> None:
    a, b, valid = scene()

    def never(fit_round: FitRound) -> list[Any]:
        raise AssertionError("the oracle CVA must not read the scene")

    fitted = fit_comparator(settings("cva", a, fixed_threshold=True), never)
    assert fitted == CVA()
    np.testing.assert_array_equal(fitted.probability(a, b, valid), cva_probability(a, b))


def test_fit_irmad__equals_published_formulation() -> None:
    a, b, valid = scene()
    x, y = a[:, valid].T.astype(np.float64), b[:, valid].T.astype(np.float64)
    fit = fit_irmad(x, y, max_iterations=8, tolerance=1e-12)
    assert fit.iterations == 8 and not fit.converged
    mad = IRMAD.from_fit(fit, 1.0, None)
    s = mad.magnitude(a, b, valid)[valid]
    want = oracles.irmad_magnitude(a, b, valid, tolerance=1e-12, max_iterations=8)[valid]
    np.testing.assert_allclose(s, want, rtol=1e-4)
    assert np.all(np.diff(fit.rho) >= 0) and np.all((fit.rho > 0) & (fit.rho < 1))


def test_fit_irmad__converges_and_is_invariant_to_band_gains() -> None:
    a, b, valid = scene()
    x, y = a[:, valid].T.astype(np.float64), b[:, valid].T.astype(np.float64)
    fit = fit_irmad(x, y, max_iterations=200, tolerance=1e-6)
    assert fit.converged
    scaled = fit_irmad(3 * x + 1, 0.5 * y, max_iterations=200, tolerance=1e-6)
    np.testing.assert_allclose(scaled.rho, fit.rho, rtol=1e-6)


def test_fit_comparator__irmad_changes_stand_out() -> None:
    a, b, valid = scene()
    fitted = fit_comparator(settings("irmad", a, irmad=IRMADOptions(tolerance=1e-6, max_iterations=200)),
                            block_runner(a, b, valid, 40))
    p = fitted.probability(a, b, valid)
    changed = np.zeros_like(valid)
    for r, q in ((10, 15), (50, 70), (70, 20)):
        changed[r : r + 12, q : q + 15] = True
    assert p[changed & valid].mean() > 4 * p[~changed & valid].mean()
    assert comparator_from_json(fitted.to_json()) == fitted


def test_fit_irmad__constant_band_is_a_fit_error() -> None:
    a, b, valid = scene()
    a[1] = 0.5
    with pytest.raises(FitError, match="singular"):
        fit_comparator(settings("irmad", a), block_runner(a, b, valid, 45))


def test_two_means__separated_clusters_give_their_means() -> None:
    rng = np.random.default_rng(3)
    low = rng.normal(0, 0.1, (300, 2))
    high = rng.normal(5, 0.1, (40, 2))
    centres = two_means(np.concatenate([low, high]), n_init=4)
    got = sorted(map(tuple, np.round(centres, 12)))
    want = sorted([tuple(np.round(low.mean(0), 12)), tuple(np.round(high.mean(0), 12))])
    assert got == want
    np.testing.assert_array_equal(centres, two_means(np.concatenate([low, high]), n_init=4))


@pytest.mark.parametrize("h", [3, 4, 5])
def test_fit_comparator__pca_kmeans_equals_numpy_oracle(h: int) -> None:
    a, b, valid = scene(seed=2)
    fitted = fit_comparator(settings("pca_kmeans", a, pca_kmeans=PCAKMeansOptions(block=h, components=3)),
                            block_runner(a, b, valid, 32))
    assert isinstance(fitted, PCAKMeans)
    mean, vec, feats, d = oracles.pca_features(a, b, valid, h=h, s=3)
    np.testing.assert_allclose(fitted.mean, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(fitted.vectors), vec, atol=1e-7)
    got = fitted.features(a, b, valid)
    np.testing.assert_allclose(got, feats, atol=2e-5)
    centres = two_means(feats[:, valid].T.astype(np.float64), n_init=10, seed=0)
    near1 = ((feats - centres[1][:, None, None]) ** 2).sum(0) < ((feats - centres[0][:, None, None]) ** 2).sum(0)
    change = int(d[near1 & valid].mean() > d[~near1 & valid].mean())
    np.testing.assert_allclose(fitted.change, centres[change], atol=1e-5)
    mask = fitted.probability(a, b, valid) >= 0.5
    want = near1 if change == 1 else ~near1
    assert (mask[valid] != want[valid]).sum() <= 2  # ties within float32 of the boundary


def test_pca_kmeans__probability_half_where_equidistant() -> None:
    fitted = PCAKMeans(block=3, mean=(0.0,) * 9, vectors=tuple((1.0,) if k == 4 else (0.0,) for k in range(9)),
                       no_change=(0.0,), change=(2.0,))
    a = np.zeros((1, 3, 3), np.float32)
    b = np.zeros((1, 3, 3), np.float32)
    b[0, 1, 1] = 1.0  # d = 1 at the centre: feature 1, as far from 0 as from 2
    p = fitted.probability(a, b, np.ones((3, 3), bool))
    assert p[1, 1] == pytest.approx(0.5) and p[0, 0] == pytest.approx(0.0)
    assert fitted.support.radius == 1


def test_fit_comparator__too_few_valid_pixels_names_the_numbers() -> None:
    a, b, valid = scene()
    valid[:] = False
    valid[0, :50] = True
    with pytest.raises(FitError, match=r"50 pixel\(s\) valid in both dates.*fit.min_valid = 100"):
        fit_comparator(settings("irmad", a), block_runner(a, b, valid, 32))


def test_fit_comparator__constant_band_with_standardize_names_it() -> None:
    a, b, valid = scene()
    b[2] = 0.25
    b[:, ~valid] = 0
    with pytest.raises(FitError, match="t2 band #3"):
        fit_comparator(settings("cva", a, standardize=True), block_runner(a, b, valid, 32))


def test_fit_comparator__sample_cap_keeps_a_spread_lattice() -> None:
    a, b, valid = scene()
    small = fit_comparator(settings("cva", a, fit=FitOptions(sample_size=500)), block_runner(a, b, valid, 32))
    again = fit_comparator(settings("cva", a, fit=FitOptions(sample_size=500)), block_runner(a, b, valid, 50))
    assert small.to_json() == again.to_json()
    exact = fit_comparator(settings("cva", a), block_runner(a, b, valid, 32))
    assert small.reference != exact.reference  # a sample, not every pixel


def test_standardization__round_trips_json() -> None:
    std = Standardization((0.1, 0.2), (1.0, 2.0), (0.3, 0.4), (3.0, 4.0))
    assert Standardization.from_json(std.to_json()) == std
