"""Classical comparators as tile predictors on the host: numpy, no torch, no identifier.

``model.comparator: cva`` with ``model.identifier: none`` is predicted by
:class:`CVAPredictor` (the oracle CVA) when a pipeline or test asks for tiles; a run's
fitted classical comparator travels with the tasks and takes its place
(:meth:`ComparatorTilePredictor.with_comparator`).
"""

from __future__ import annotations

import numpy as np

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.classical.cva import CVA
from s2c_batch.kernels.prediction import Prediction


class ComparatorTilePredictor:
    """A fitted classical comparator as a tile predictor (no identifier, no torch)."""

    class_names: tuple[str, ...] = ()
    target_classes: tuple[int, ...] = ()

    def __init__(self, comparator: FittedComparator) -> None:
        """Wrap a fitted classical comparator."""
        self.comparator = comparator

    def with_comparator(self, comparator: FittedComparator) -> ComparatorTilePredictor:
        """A predictor of another fitted comparator (a run's)."""
        return ComparatorTilePredictor(comparator)

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray) -> Prediction:
        """Change probability of N tile pairs, each tile on its own.

        Args:
            tiles_t1: float32 ``[N, C, H, W]`` in [0, 1].
            tiles_t2: float32 ``[N, C, H, W]`` in [0, 1].

        Returns:
            ``Prediction(prob=[N, H, W])`` without class maps.
        """
        a = np.asarray(tiles_t1, np.float32)
        b = np.asarray(tiles_t2, np.float32)
        if a.shape[0] == 0:
            return Prediction(prob=np.zeros((0, *a.shape[2:]), np.float32))
        valid = np.ones(a.shape[2:], bool)
        return Prediction(prob=np.stack([self.comparator.probability(x, y, valid) for x, y in zip(a, b, strict=True)]))


class CVAPredictor(ComparatorTilePredictor):
    """Tile predictor for ``model.comparator: cva`` with ``model.identifier: none`` (the oracle CVA)."""

    def __init__(self) -> None:
        """The oracle CVA: no standardisation, ``s_ref = sqrt(C)``."""
        super().__init__(CVA())
