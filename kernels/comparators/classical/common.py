"""What the classical comparators share: whole-scene standardisation and the linear probability map.

``model.standardize: scene`` standardises each date's bands by that date's whole-scene
statistics before CVA, PCA-KMeans or IR-MAD (:class:`Standardization`, fitted in
:mod:`s2c_batch.kernels.comparators.classical.fitting`); the magnitudes of CVA and IR-MAD
become probabilities by :func:`linear_probability`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Standardization:
    """Per-date, per-band whole-scene mean and standard deviation (``model.standardize: scene``).

    Attributes:
        mean_t1: ``[C]`` band means of t1 over the valid pixels.
        std_t1: ``[C]`` band standard deviations of t1 (population).
        mean_t2: ``[C]`` of t2.
        std_t2: ``[C]`` of t2.
    """

    mean_t1: tuple[float, ...]
    std_t1: tuple[float, ...]
    mean_t2: tuple[float, ...]
    std_t2: tuple[float, ...]

    def apply(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardise both dates; invalid pixels become 0 (the band mean).

        Args:
            t1: float32 ``[C, h, w]``.
            t2: float32 ``[C, h, w]``.
            valid: bool ``[h, w]``.

        Returns:
            float32 ``(t1', t2')``, each ``[C, h, w]``.
        """
        out = []
        for x, mean, std in ((t1, self.mean_t1, self.std_t1), (t2, self.mean_t2, self.std_t2)):
            m = np.asarray(mean, np.float32)[:, None, None]
            s = np.asarray(std, np.float32)[:, None, None]
            y = (np.asarray(x, np.float32) - m) / s
            y[:, ~valid] = 0.0
            out.append(y)
        return out[0], out[1]

    def to_json(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {"mean_t1": list(self.mean_t1), "std_t1": list(self.std_t1),
                "mean_t2": list(self.mean_t2), "std_t2": list(self.std_t2)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Standardization:
        """Inverse of :meth:`to_json`."""
        return cls(*(tuple(float(v) for v in data[k]) for k in ("mean_t1", "std_t1", "mean_t2", "std_t2")))


def standardized(standardization: Standardization | None, t1: np.ndarray, t2: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both dates standardised when ``standardization`` is set, else as they are."""
    return (t1, t2) if standardization is None else standardization.apply(t1, t2, valid)


def linear_probability(magnitude: np.ndarray, reference: float) -> np.ndarray:
    """Change magnitude mapped linearly to a probability: ``min(1, s / s_ref)``.

    Linear, so that Otsu's threshold on the encoded probability is Otsu on the
    magnitude (a saturating map such as a chi-square CDF squeezes the changes into
    the top levels and leaves Otsu nothing to separate).

    Args:
        magnitude: float ``[h, w]``, >= 0.
        reference: ``s_ref`` > 0 (e.g. a high percentile of the magnitude over the scene).

    Returns:
        float32 ``[h, w]`` in [0, 1].
    """
    p = np.asarray(magnitude, np.float32) / np.float32(reference)
    return np.minimum(np.float32(1.0), p).astype(np.float32)
