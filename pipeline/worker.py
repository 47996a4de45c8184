"""What runs on a Dask worker: the model held once per worker, and the block task.

:class:`PredictorPlugin` is registered once per run with
``client.register_plugin``; every worker builds the predictor in ``setup`` (on
its own GPU when it has one) and keeps it. Block tasks carry only a small
:class:`BlockJob` spec, never the model, and fetch the predictor from the
plugin. Outside a worker (the synchronous scheduler in tests) a process-level
cache plays the plugin's part.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin, get_worker

from s2c_batch.kernels.blend import predict_block
from s2c_batch.kernels.encode import encode_products
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.tiling import Block
from s2c_batch.pipeline import reader, store
from s2c_batch.pipeline.scene import ScenePair

log = logging.getLogger(__name__)

PLUGIN_PREFIX = "s2c-predictor"


def plugin_name(model: ModelConfig) -> str:
    """Name of the plugin holding the predictor of ``model``.

    One name per model config, so runs with different models can share a
    cluster (``s2c-batch batch``) and a rerun with the same model reuses it.
    """
    digest = hashlib.sha256(repr(model).encode()).hexdigest()[:12]
    return f"{PLUGIN_PREFIX}-{digest}"
_local_predictors: dict[ModelConfig, TilePredictor] = {}


def make_predictor(cfg: ModelConfig, device: str | None = None) -> TilePredictor:
    """Build the tile predictor for a model config (once per worker).

    The ``cva`` comparator without identifier needs no torch and is built here;
    everything else comes from :func:`s2c_batch.kernels.predictor.build_predictor`.
    """
    if cfg.comparator == "cva" and cfg.identifier == "none":
        from s2c_batch.kernels.cva import CVAPredictor

        return CVAPredictor()
    from s2c_batch.kernels.predictor import build_predictor

    if device is not None and cfg.device == "auto":
        from dataclasses import replace

        cfg = replace(cfg, device=device)
    return build_predictor(cfg)


class PredictorPlugin(WorkerPlugin):
    """Loads the predictor once on every worker.

    Args:
        model: the ``model`` config section.
        torch_threads: intra-op threads for torch on CPU workers (``None`` = leave).
    """

    idempotent = True  # re-registering the same model on a warm cluster keeps it loaded

    def __init__(self, model: ModelConfig, torch_threads: int | None = None) -> None:
        self.name = plugin_name(model)
        self.model = model
        self.torch_threads = torch_threads
        self.predictor: TilePredictor | None = None

    def setup(self, worker: Any) -> None:
        if self.torch_threads and not (self.model.comparator == "cva" and self.model.identifier == "none"):
            import torch

            torch.set_num_threads(self.torch_threads)
        self.predictor = make_predictor(self.model, _worker_device(worker, self.model))
        log.info("worker %s holds predictor %s", worker.name, type(self.predictor).__name__)

    def teardown(self, worker: Any) -> None:
        self.predictor = None
        reader.close_handles()


def _worker_device(worker: Any, model: ModelConfig) -> str | None:
    """One GPU per worker: ``cuda:<worker index mod GPUs>`` when the config says ``auto``."""
    if model.device != "auto" or (model.comparator == "cva" and model.identifier == "none"):
        return None
    import torch

    n = torch.cuda.device_count()
    if n == 0:
        return "cpu"
    try:
        index = int(str(worker.name).rsplit("-", 1)[-1])
    except ValueError:
        index = 0
    return f"cuda:{index % n}"


def worker_predictor(model: ModelConfig) -> TilePredictor:
    """The predictor of this worker's plugin, or of this process outside a worker."""
    try:
        worker = get_worker()
    except ValueError:
        worker = None
    if worker is not None:
        plugin = worker.plugins.get(plugin_name(model))
        if plugin is not None and plugin.predictor is not None and plugin.model == model:
            return plugin.predictor  # type: ignore[no-any-return]
    pred = _local_predictors.get(model)
    if pred is None:
        pred = _local_predictors[model] = make_predictor(model)
    return pred


@dataclass(frozen=True)
class BlockJob:
    """Everything one block task needs; small and picklable (no pixels, no model)."""

    pair: ScenePair
    block: Block
    overlap: int
    model: ModelConfig
    store: str
    with_classes: bool


@dataclass(frozen=True)
class BlockReport:
    """What a finished block task reports back."""

    index: tuple[int, int]
    tiles: int
    valid_pixels: int
    read_s: float
    predict_s: float
    write_s: float
    worker: str


def process_block(job: BlockJob) -> BlockReport:
    """Read, predict, blend, encode and write one output block.

    The write replaces whole shards of the store, so running a block twice
    (retry after a lost worker, resume) writes the same bytes.
    """
    block = job.block
    t0 = time.perf_counter()
    t1, v1 = reader.read_window(job.pair.t1, block.read)
    t2, v2 = reader.read_window(job.pair.t2, block.read)
    valid = v1 & v2
    t_read = time.perf_counter()
    predictor = worker_predictor(job.model)
    pred = predict_block(
        t1, t2, valid, block=block, shape=job.pair.grid.shape, overlap=job.overlap,
        predictor=predictor, batch_size=job.model.batch_size, scale=job.pair.t1.scale,
    )
    core_valid = valid[block.core.slices((block.read.row, block.read.col))]
    arrays = encode_products(
        pred.prob, core_valid, threshold=job.model.threshold,
        class_t1=pred.class_t1, class_t2=pred.class_t2,
        target_classes=predictor.target_classes, with_classes=job.with_classes,
    )
    t_pred = time.perf_counter()
    store.write_block(job.store, block.core, arrays)
    t_write = time.perf_counter()
    try:
        wname = str(get_worker().name)
    except ValueError:
        wname = f"pid-{os.getpid()}"
    return BlockReport(
        index=block.index, tiles=len(block.tiles), valid_pixels=int(core_valid.sum()),
        read_s=t_read - t0, predict_s=t_pred - t_read, write_s=t_write - t_pred, worker=wname,
    )
