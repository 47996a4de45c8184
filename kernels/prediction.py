"""What a tile predictor returns, and the interface the pipeline calls.

Every predictor (the Seg2Change :class:`~s2c_batch.kernels.predictor.ChangePredictor`
and the pointwise :class:`~s2c_batch.kernels.cva.CVAPredictor`) takes batches of
co-registered tile pairs scaled to [0, 1] and returns a :class:`Prediction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """Per-pixel outputs for a batch of N tile pairs.

    Attributes:
        prob: change probability in [0, 1], float32 ``[N, H, W]``.
        class_t1: class index of t1 in the vocabulary, uint8 ``[N, H, W]``, or
            ``None`` without an identifier.
        class_t2: the same for t2.
    """

    prob: np.ndarray
    class_t1: np.ndarray | None = None
    class_t2: np.ndarray | None = None


class TilePredictor(Protocol):
    """The interface the pipeline's block task calls, once per batch of tiles."""

    #: Class names of the identifier's vocabulary (index = class value); empty without one.
    class_names: tuple[str, ...]
    #: Indexes of the target classes (binary change of targets); empty = every class.
    target_classes: tuple[int, ...]

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray) -> Prediction:
        """Predict change for N tile pairs.

        Args:
            tiles_t1: float32 ``[N, C, H, W]`` in [0, 1], bands as ``input.bands`` selects.
            tiles_t2: float32 ``[N, C, H, W]`` in [0, 1].

        Returns:
            The per-pixel change probability and, with an identifier, class maps.
        """
        ...
