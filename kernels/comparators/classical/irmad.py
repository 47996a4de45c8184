"""IR-MAD: iteratively reweighted multivariate alteration detection (Nielsen 2007, IEEE TIP 16(2)).

Canonical correlation analysis of the two dates gives pairs of projections ``a_i``,
``b_i`` (``i = 1..C``, least correlated first) whose differences, the MAD variates
``M_i = a_i^T (x - m_x) - b_i^T (y - m_y)``, are uncorrelated with variances
``2 (1 - rho_i)``. Their standardised sum of squares ``Z = sum_i M_i^2 / (2 (1 - rho_i))``
is chi-square with C degrees of freedom for unchanged pixels. IR-MAD iterates: every
pixel is weighted by its no-change probability ``1 - F_chi2(Z; C)`` and the CCA is
recomputed with those weights, until the canonical correlations move less than a
tolerance. The change magnitude is ``s = sqrt(Z)``, mapped linearly to
``p = min(1, s / s_ref)`` with ``s_ref`` a high percentile of ``s`` over the fit sample.

IR-MAD is invariant to affine transformations of each date's bands, so
``model.standardize`` does not change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg

from s2c_batch.kernels.comparators.base import Support
from s2c_batch.kernels.comparators.classical.common import Standardization, linear_probability, standardized

#: Smallest MAD variance 2 (1 - rho) kept: identical bands (rho = 1) would divide by zero.
_MIN_VARIANCE = 1e-12


@dataclass(frozen=True)
class IRMADFit:
    """The converged transformation and how the iteration went.

    Attributes:
        a: float64 ``[C, C]`` projections of t1, one column per MAD variate.
        b: float64 ``[C, C]`` projections of t2.
        mean_t1: float64 ``[C]`` weighted mean of t1.
        mean_t2: float64 ``[C]`` weighted mean of t2.
        rho: float64 ``[C]`` canonical correlations, ascending.
        iterations: iterations run.
        converged: whether the correlations moved less than the tolerance.
    """

    a: np.ndarray
    b: np.ndarray
    mean_t1: np.ndarray
    mean_t2: np.ndarray
    rho: np.ndarray
    iterations: int
    converged: bool


def _cca(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted CCA of ``[n, C]`` samples: means, ascending rho, unit-variance projections."""
    sw = w.sum()
    mx = (w[:, None] * x).sum(axis=0) / sw
    my = (w[:, None] * y).sum(axis=0) / sw
    v = np.concatenate([x - mx, y - my], axis=1)
    n = len(v)
    cov = (v * w[:, None]).T @ v / sw * (n / max(n - 1, 1))
    c = x.shape[1]
    s11, s22, s12 = cov[:c, :c], cov[c:, c:], cov[:c, c:]
    s22_inv_s21 = linalg.solve(s22, s12.T, assume_a="pos")
    target = s12 @ s22_inv_s21
    target = (target + target.T) / 2
    rho2, a = linalg.eigh(target, s11)  # ascending; a^T s11 a = I
    rho = np.sqrt(np.clip(rho2, 0.0, 1.0))
    b = s22_inv_s21 @ a / np.maximum(rho, 1e-300)
    return mx, my, rho, a, b


def _chi_square(x: np.ndarray, y: np.ndarray, mx: np.ndarray, my: np.ndarray, a: np.ndarray,
                b: np.ndarray, rho: np.ndarray) -> np.ndarray:
    mad = (x - mx) @ a - (y - my) @ b
    var = np.maximum(2.0 * (1.0 - rho), _MIN_VARIANCE)
    return np.asarray((mad * mad / var).sum(axis=1))


def fit_irmad(x: np.ndarray, y: np.ndarray, *, max_iterations: int = 100, tolerance: float = 1e-4) -> IRMADFit:
    """Iterate weighted CCA to convergence on samples of both dates.

    Args:
        x: float ``[n, C]`` t1 values of the sample pixels.
        y: float ``[n, C]`` t2 values.
        max_iterations: iterations at most (1 = plain MAD).
        tolerance: stop when no canonical correlation moves more than this.

    Returns:
        The fitted transformation.

    When the reweighting collapses the fit falls back to plain MAD, the first iteration (every
    pixel weighted 1), with ``iterations`` 1 and ``converged`` false. It collapses when no more
    than ``2 C`` pixels keep a no-change weight above 0 (in float64, ``1 - F_chi2`` is 0 for
    large ``Z``), when a reweighted CCA is singular, or when a canonical correlation reaches 1
    (a MAD variance below ``_MIN_VARIANCE``) that was below it at first: the weights have
    gathered on a few pixels whose dates are exactly linearly related, and the statistic of
    every other pixel overflows. Seen on RGB crops of LEVIR-CD with large changes, whose
    three bands are correlated at 0.99.

    Raises:
        ValueError: too few samples, or a band without variance (the CCA is singular).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, c = x.shape
    if n <= 2 * c:
        raise ValueError(f"IR-MAD needs more than {2 * c} valid pixels for {c} bands, got {n}")
    w = np.ones(n)
    previous = None
    first: tuple[np.ndarray, ...] | None = None
    it = 0
    for it in range(1, max_iterations + 1):  # noqa: B007 (the count is reported)
        try:
            mx, my, rho, a, b = _cca(x, y, w)
        except (linalg.LinAlgError, ValueError) as exc:
            if first is None:
                raise ValueError(
                    f"the canonical correlation of the two dates is singular ({exc}): a band is constant "
                    "or two bands are identical; choose other input.bands"
                ) from exc
            return _mad(first)  # the reweighted sample is singular
        if first is None:
            first = (mx, my, rho, a, b)
        elif _degenerate(rho, first[2]):
            return _mad(first)
        if previous is not None and np.max(np.abs(rho - previous)) < tolerance:
            return IRMADFit(a, b, mx, my, rho, it, True)
        previous = rho
        if it < max_iterations:
            from scipy.stats import chi2  # here: scipy.stats costs workers half a second to import

            w = 1.0 - chi2.cdf(_chi_square(x, y, mx, my, a, b, rho), c)
            if not (np.isfinite(w).all() and np.count_nonzero(w) > 2 * c):
                return _mad(first)  # no pixel looks unchanged any more
    return IRMADFit(a, b, mx, my, rho, it, False)


def _degenerate(rho: np.ndarray, start: np.ndarray) -> bool:
    """Whether a canonical correlation has reached 1 (a MAD variance below ``_MIN_VARIANCE``) that did not at first."""
    return bool(np.any((2.0 * (1.0 - rho) < _MIN_VARIANCE) & ~(2.0 * (1.0 - start) < _MIN_VARIANCE)))


def _mad(first: tuple[np.ndarray, ...]) -> IRMADFit:
    """The fit of the first iteration (plain MAD, every pixel weighted 1): where the reweighting collapsed."""
    mx, my, rho, a, b = first
    return IRMADFit(a, b, mx, my, rho, 1, False)


@dataclass(frozen=True)
class IRMAD:
    """IR-MAD with its parameters fixed.

    Attributes:
        a: ``[C][C]`` projections of t1 (one column per variate).
        b: ``[C][C]`` projections of t2.
        mean_t1: ``[C]``.
        mean_t2: ``[C]``.
        rho: ``[C]`` canonical correlations.
        reference: ``s_ref`` of ``p = min(1, s / s_ref)``.
        standardization: whole-scene band statistics applied first, or ``None``.
        iterations: iterations of the fit (provenance).
        converged: whether the fit converged (provenance).
    """

    a: tuple[tuple[float, ...], ...]
    b: tuple[tuple[float, ...], ...]
    mean_t1: tuple[float, ...]
    mean_t2: tuple[float, ...]
    rho: tuple[float, ...]
    reference: float
    standardization: Standardization | None = None
    iterations: int = 0
    converged: bool = True
    name: str = "irmad"

    @classmethod
    def from_fit(cls, fit: IRMADFit, reference: float, standardization: Standardization | None) -> IRMAD:
        """Freeze a fit with its ``s_ref``."""
        return cls(
            a=tuple(tuple(float(v) for v in row) for row in fit.a),
            b=tuple(tuple(float(v) for v in row) for row in fit.b),
            mean_t1=tuple(float(v) for v in fit.mean_t1), mean_t2=tuple(float(v) for v in fit.mean_t2),
            rho=tuple(float(v) for v in fit.rho), reference=float(reference),
            standardization=standardization, iterations=fit.iterations, converged=fit.converged,
        )

    @property
    def support(self) -> Support:
        """Pointwise."""
        return Support("point")

    def magnitude(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``s = sqrt(Z)`` of one window: float32 ``[h, w]`` (inputs ``[C, h, w]`` in [0, 1])."""
        t1, t2 = standardized(self.standardization, t1, t2, valid)
        c = len(self.rho)
        x = np.asarray(t1, np.float64)
        y = np.asarray(t2, np.float64)
        z = np.zeros(x.shape[1:], np.float64)
        for i in range(c):  # variate by variate, bands in order: the same sums for any window
            mad = np.zeros(x.shape[1:], np.float64)
            for band in range(c):
                mad += self.a[band][i] * (x[band] - self.mean_t1[band])
                mad -= self.b[band][i] * (y[band] - self.mean_t2[band])
            z += mad * mad / max(2.0 * (1.0 - self.rho[i]), _MIN_VARIANCE)
        return np.sqrt(z).astype(np.float32)

    def probability(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``min(1, s / s_ref)``: float32 ``[h, w]``."""
        return linear_probability(self.magnitude(t1, t2, valid), self.reference)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {"comparator": self.name, "a": [list(r) for r in self.a], "b": [list(r) for r in self.b],
                "mean_t1": list(self.mean_t1), "mean_t2": list(self.mean_t2), "rho": list(self.rho),
                "reference": self.reference, "iterations": self.iterations, "converged": self.converged,
                "standardization": self.standardization.to_json() if self.standardization else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IRMAD:
        """Inverse of :meth:`to_json`."""
        std = data.get("standardization")
        return cls(
            a=tuple(tuple(float(v) for v in r) for r in data["a"]),
            b=tuple(tuple(float(v) for v in r) for r in data["b"]),
            mean_t1=tuple(float(v) for v in data["mean_t1"]), mean_t2=tuple(float(v) for v in data["mean_t2"]),
            rho=tuple(float(v) for v in data["rho"]), reference=float(data["reference"]),
            standardization=Standardization.from_json(std) if std else None,
            iterations=int(data.get("iterations", 0)), converged=bool(data.get("converged", True)),
        )
