"""What a tile predictor returns, and the interface the pipeline calls.

Every predictor (the Seg2Change :class:`~s2c_batch.kernels.predictors.tile.ChangePredictor`
and the pointwise :class:`~s2c_batch.kernels.predictors.host.CVAPredictor`) takes batches of
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
        weight: float32 ``[N, H, W]`` > 0, a per-pixel multiplier of each tile's blend
            weight, or ``None`` (1). Mask-level comparators raise it on the objects a tile
            owns, so that the tile deciding an object outweighs those that see it cut.
    """

    prob: np.ndarray
    class_t1: np.ndarray | None = None
    class_t2: np.ndarray | None = None
    weight: np.ndarray | None = None


class TilePredictor(Protocol):
    """The interface the pipeline's block task calls, once per batch of tiles.

    Optional members, looked up with ``getattr``: ``predict_raw(raw_t1, raw_t2,
    scale)`` (scale on the device, see :func:`predict_raw`), ``device_async``
    (True when ``predict`` mostly waits for another device, such as a GPU: the block
    task then blends one batch while the next is predicted),
    ``with_comparator(fitted)`` (the same predictor using a run's fitted comparator) and
    ``owns_objects`` (True when ``predict`` and ``predict_raw`` take ``cores``, bool
    ``[N, H, W]``: the pixels of each tile nearer its middle than any other tile's, see
    :func:`~s2c_batch.kernels.raster.tiling.tile_core`).
    """

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


def predict_raw(predictor: TilePredictor, raw_t1: np.ndarray, raw_t2: np.ndarray, scale: float,
                cores: np.ndarray | None = None) -> Prediction:
    """Predict raw tiles: on the device when the predictor can (``predict_raw``), else scaled here.

    Args:
        predictor: any tile predictor.
        raw_t1: ``[N, C, H, W]`` raw pixels.
        raw_t2: ``[N, C, H, W]`` raw pixels.
        scale: raw value that maps to 1.0.
        cores: bool ``[N, H, W]`` tile cores, passed on to a predictor that ``owns_objects``.
    """
    extra = {"cores": cores} if cores is not None else {}
    on_device = getattr(predictor, "predict_raw", None)
    if on_device is not None:
        return on_device(raw_t1, raw_t2, scale, **extra)
    return predictor.predict(to_unit(raw_t1, scale), to_unit(raw_t2, scale), **extra)


def to_unit(raw: np.ndarray, scale: float) -> np.ndarray:
    """Raw pixels to float32 in [0, 1]: ``clip(raw / scale, 0, 1)``, NaN to 0.

    Example:
        >>> to_unit(np.array([0, 51, 255, 300], np.uint16), 255.0).tolist()
        [0.0, 0.20000000298023224, 1.0, 1.0]
    """
    out = raw.astype(np.float32)
    out /= np.float32(scale)
    np.clip(out, 0.0, 1.0, out=out)
    if raw.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0)
    return out
