"""Change vector analysis (CVA): the pointwise baseline of Table 1 and the pipeline's oracle.

The change magnitude is the norm of the difference vector, ``s = ||a - b||_2`` over
the C selected bands, mapped linearly to a probability ``p = min(1, s / s_ref)``:

- as the pipeline's exact oracle (``model.standardize: none`` and a numeric
  ``model.threshold``): inputs scaled to [0, 1] and ``s_ref = sqrt(C)``, the largest
  possible magnitude; any correct tiling reproduces the whole-scene result;
- fitted (``standardize: scene`` or ``threshold: otsu``): each date optionally
  standardised by its whole-scene band statistics (CVA is not invariant to gains
  between dates), and ``s_ref`` a high percentile of ``s`` over the fit sample, so
  that Otsu's threshold on the encoded probability separates the changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2c_batch.kernels.comparators.base import Support
from s2c_batch.kernels.comparators.classical.common import Standardization, linear_probability, standardized


def cva_magnitude(a: np.ndarray, b: np.ndarray, *, axis: int = -3) -> np.ndarray:
    """Norm of the difference vector, float32, bands summed in order.

    Args:
        a: float ``[..., C, H, W]`` (t1).
        b: float, same shape (t2).
        axis: the band axis.

    Returns:
        float32 ``[..., H, W]``.
    """
    diff = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    return np.sqrt(np.sum(diff * diff, axis=axis, dtype=np.float32))


def cva_probability(a: np.ndarray, b: np.ndarray, *, axis: int = -3) -> np.ndarray:
    """Change magnitude of two co-registered images, normalised to [0, 1].

    Args:
        a: float ``[..., C, H, W]`` in [0, 1] (t1).
        b: float, same shape (t2).
        axis: the band axis.

    Returns:
        float32 ``[..., H, W]``: ``min(1, ||a - b||_2 / sqrt(C))``.

    Example:
        >>> a = np.zeros((3, 1, 2), np.float32); b = np.ones((3, 1, 2), np.float32)
        >>> cva_probability(a, b).tolist()
        [[1.0, 1.0]]
    """
    channels = np.asarray(a).shape[axis]
    return linear_probability(cva_magnitude(a, b, axis=axis), float(np.float32(np.sqrt(channels))))


@dataclass(frozen=True)
class CVA:
    """CVA with its parameters fixed.

    Attributes:
        reference: ``s_ref``; ``None`` = ``sqrt(C)`` (the oracle).
        standardization: whole-scene band statistics, or ``None``.
    """

    reference: float | None = None
    standardization: Standardization | None = None
    name: str = "cva"

    @property
    def support(self) -> Support:
        """Pointwise."""
        return Support("point")

    def magnitude(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``s`` of one window: float32 ``[h, w]`` (inputs ``[C, h, w]`` in [0, 1])."""
        return cva_magnitude(*standardized(self.standardization, t1, t2, valid))

    def probability(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``min(1, s / s_ref)``: float32 ``[h, w]`` (see ``FittedComparator.probability``)."""
        reference = self.reference if self.reference is not None else float(np.float32(math.sqrt(t1.shape[0])))
        return linear_probability(self.magnitude(t1, t2, valid), reference)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {"comparator": self.name, "reference": self.reference,
                "standardization": self.standardization.to_json() if self.standardization else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CVA:
        """Inverse of :meth:`to_json`."""
        std = data.get("standardization")
        return cls(reference=data.get("reference"),
                   standardization=Standardization.from_json(std) if std else None)
