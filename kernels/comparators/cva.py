"""Change vector analysis (CVA): the pointwise baseline of Table 1 and the pipeline's oracle.

``p = min(1, ||a - b||_2 / sqrt(C))`` over the C selected bands of inputs scaled
to [0, 1]. It is pointwise, so any correct tiling and blending of it reproduces
the whole-scene result.
"""

from __future__ import annotations

import numpy as np

from s2c_batch.kernels.prediction import Prediction


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
    diff = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    channels = diff.shape[axis]
    norm = np.sqrt(np.sum(diff * diff, axis=axis, dtype=np.float32))
    return np.minimum(np.float32(1.0), norm / np.float32(np.sqrt(channels))).astype(np.float32)


class CVAPredictor:
    """Tile predictor for ``model.comparator: cva`` with ``model.identifier: none``."""

    class_names: tuple[str, ...] = ()
    target_classes: tuple[int, ...] = ()

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray) -> Prediction:
        """CVA probability of N tile pairs.

        Args:
            tiles_t1: float32 ``[N, C, H, W]`` in [0, 1].
            tiles_t2: float32 ``[N, C, H, W]`` in [0, 1].

        Returns:
            ``Prediction(prob=[N, H, W])`` without class maps.
        """
        return Prediction(prob=cva_probability(tiles_t1, tiles_t2, axis=1))
