"""The tile predictor of a model config: the one entry point the pipeline calls, once per worker."""

from __future__ import annotations

from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.predictors.host import CVAPredictor
from s2c_batch.kernels.predictors.masks import MaskChangePredictor
from s2c_batch.kernels.predictors.tile import ChangePredictor


def build_predictor(cfg: ModelConfig) -> TilePredictor:
    """The tile predictor for a model config (called once per worker).

    ``cva`` without identifier gives :class:`~s2c_batch.kernels.predictors.host.CVAPredictor`
    (no torch model); a mask-level comparator a
    :class:`~s2c_batch.kernels.predictors.masks.MaskChangePredictor`; everything else a
    :class:`~s2c_batch.kernels.predictors.tile.ChangePredictor`.
    """
    if not cfg.uses_torch:
        return CVAPredictor()
    if cfg.mask_level:
        return MaskChangePredictor.from_config(cfg)
    return ChangePredictor.from_config(cfg)
