"""What every comparator shares: its spatial support, fitted parameters, standardisation.

A comparator turns two co-registered images into a change probability. The classical
ones (CVA, PCA-KMeans, IR-MAD) first *fit* whole-scene parameters from statistics
(:mod:`s2c_batch.kernels.comparators.classical.fitting`), then *predict* any window with those
parameters; a fitted comparator is a small frozen dataclass that travels with each task.
Learned tile models (CACH, DCVA) run on tiles inside the tile predictor.

The *support* says how far a pixel's result looks: ``point`` (the pixel alone),
``neighbourhood`` (a square of ``radius`` pixels around it) or ``tile`` (a model that
sees whole tiles). The pipeline reads blocks with a halo of ``radius`` for the first two
and needs no tiles, no blending; only ``tile`` comparators are tiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np


@dataclass(frozen=True)
class Support:
    """How far a comparator looks around a pixel.

    Attributes:
        kind: ``point``, ``neighbourhood`` or ``tile``.
        radius: pixels a result depends on around its own (0 for ``point``).
    """

    kind: Literal["point", "neighbourhood", "tile"]
    radius: int = 0


class FittedComparator(Protocol):
    """A classical comparator with all of its parameters fixed."""

    @property
    def name(self) -> str:
        """Registry name (``cva``, ``pca_kmeans``, ``irmad``)."""
        ...

    @property
    def support(self) -> Support:
        """The pixels a result depends on."""
        ...

    def probability(self, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Change probability of one window.

        Args:
            t1: float32 ``[C, h, w]`` in [0, 1] (invalid pixels hold 0).
            t2: float32 ``[C, h, w]`` in [0, 1].
            valid: bool ``[h, w]``, valid in both dates.

        Returns:
            float32 ``[h, w]`` in [0, 1]. Within ``support.radius`` of the window's edge
            the result treats the outside as invalid: correct only at the scene's edge.
        """
        ...

    def to_json(self) -> dict[str, Any]:
        """Parameters as plain JSON data (for ``run.json`` and ``.s2c/fit.json``)."""
        ...
