"""A benchmark-only tile predictor that sleeps for a GPU's time per tile pair; preloaded by the workers.

``dask worker --preload bench/sleepy.py`` replaces
:func:`~s2c_batch.pipeline.run.worker.make_predictor` in that worker process, so the model
plugin of a run holds a :class:`SleepPredictor`: every batch of N pairs waits
``N * S2C_SLEEP_MS_PER_PAIR`` milliseconds, as a host waits for its GPU, and returns a
constant probability. Everything else of the block task (reading, stacking, blending,
exchanging pieces, encoding, the Zarr shard writes) is the pipeline's own. s2c-batch never
imports this.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from s2c_batch.kernels.prediction import Prediction

MS_ENV = "S2C_SLEEP_MS_PER_PAIR"


class SleepPredictor:
    """Sleeps ``ms_per_pair`` per tile pair; the change probability is 0.25 everywhere."""

    class_names: tuple[str, ...] = ()
    target_classes: tuple[int, ...] = ()
    device_async = True  # like a GPU: the block task blends one batch while the next "runs"

    def __init__(self, ms_per_pair: float) -> None:
        self.ms_per_pair = ms_per_pair

    def predict_raw(self, raw_t1: np.ndarray, raw_t2: np.ndarray, scale: float, **kw: Any) -> Prediction:
        """Wait as the GPU would for ``len(raw_t1)`` pairs."""
        time.sleep(len(raw_t1) * self.ms_per_pair / 1000.0)
        n, _, h, w = raw_t1.shape
        return Prediction(prob=np.full((n, h, w), 0.25, np.float32))

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray, **kw: Any) -> Prediction:
        """As :meth:`predict_raw`."""
        return self.predict_raw(tiles_t1, tiles_t2, 1.0)


def make_sleepy(*args: Any, **kwargs: Any) -> SleepPredictor:
    """What the worker's plugin builds instead of the model."""
    return SleepPredictor(float(os.environ.get(MS_ENV, "155")))


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: the worker's predictors sleep."""
    from s2c_batch.pipeline.run import worker as run_worker

    run_worker.make_predictor = make_sleepy  # type: ignore[assignment]
