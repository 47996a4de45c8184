"""What every comparator shares: its spatial support and the protocols of a run's comparator.

A comparator turns two co-registered images into a change probability. What a run's
comparator is depends on its family (:mod:`s2c_batch.kernels.comparators.registry`): a
classical one (CVA, PCA-KMeans, IR-MAD) is *fitted* to the scene from statistics
(:mod:`s2c_batch.kernels.comparators.classical.fitting`) and then *predicts* any window
with those parameters (:class:`FittedComparator`); DCVA's fitted channel selection and a
mask-level method with its options are comparators too. Each is a small frozen dataclass
that travels with every task (:class:`Comparator`). CACH has none: its head is the
predictor's model.

The *support* says how far a pixel's result looks: ``point`` (the pixel alone),
``neighbourhood`` (a square of ``radius`` pixels around it) or ``tile`` (a model that
sees whole tiles). The pipeline reads blocks with a halo of ``radius`` for the first two
and needs no tiles, no blending; only ``tile`` comparators are tiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

#: The kinds of :class:`Support`.
SupportKind = Literal["point", "neighbourhood", "tile"]


@dataclass(frozen=True)
class Support:
    """How far a comparator looks around a pixel.

    Attributes:
        kind: ``point``, ``neighbourhood`` or ``tile``.
        radius: pixels a result depends on around its own (0 for ``point``).
    """

    kind: SupportKind
    radius: int = 0


class Comparator(Protocol):
    """A run's comparator with everything fixed: what travels with each task."""

    @property
    def name(self) -> str:
        """Registry name (``model.comparator``)."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Parameters or options as plain JSON data (``run.json``, ``.s2c/fit.json``)."""
        ...


@runtime_checkable
class FittedComparator(Comparator, Protocol):
    """A classical comparator with all of its parameters fixed: it predicts any window on the host."""

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
