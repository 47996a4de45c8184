"""What runs on a Dask worker: the model held once per worker, and the block task.

:class:`PredictorPlugin` is registered once per run with
``client.register_plugin``; every worker builds the predictor in ``setup`` (on
its own GPU when it has one) and keeps it. Tasks carry only small specs
(:class:`TileJob`, :class:`WriteJob`), never the model or pixels, and fetch the
predictor from the plugin. Outside a worker (the synchronous scheduler in tests) a process-level
cache plays the plugin's part.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from distributed import WorkerPlugin, get_worker

from s2c_batch.kernels.comparators.registry import RunComparator
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.raster.blend import Partial, accumulate_tiles, combine_partials, split_partial
from s2c_batch.kernels.raster.encode import encode_products
from s2c_batch.kernels.raster.otsu import level_histogram
from s2c_batch.kernels.raster.tiling import Block, Window
from s2c_batch.pipeline.cluster.allocator import reuse_freed_memory
from s2c_batch.pipeline.cluster.device_memory import smaller_batches_on_oom
from s2c_batch.pipeline.cluster.progress import task_progress
from s2c_batch.pipeline.errors import portable_errors
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.products.preview import PreviewPiece

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
    everything else comes from :func:`s2c_batch.kernels.predictors.build.build_predictor`.
    """
    if not cfg.uses_torch:
        from s2c_batch.kernels.predictors.host import CVAPredictor

        return CVAPredictor()
    from s2c_batch.kernels.predictors.build import build_predictor

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
        """Build the predictor on this worker (on its own GPU when it has one)."""
        if self.model.uses_torch:
            reuse_freed_memory()  # undo the nanny's malloc setting that maps every activation afresh
            if self.torch_threads:
                import torch

                torch.set_num_threads(self.torch_threads)
        self.predictor = make_predictor(self.model, _worker_device(worker, self.model))
        log.info("worker %s holds predictor %s", worker.name, type(self.predictor).__name__)

    def teardown(self, worker: Any) -> None:
        """Drop the predictor and close the worker's open scene files."""
        self.predictor = None
        reader.close_handles()


def _worker_device(worker: Any, model: ModelConfig) -> str | None:
    """One GPU per worker: ``cuda:<worker index mod GPUs>`` when the config says ``auto``."""
    if model.device != "auto" or not model.uses_torch:
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
        if isinstance(plugin, PredictorPlugin) and plugin.predictor is not None and plugin.model == model:
            return plugin.predictor
    pred = _local_predictors.get(model)
    if pred is None:
        pred = _local_predictors[model] = make_predictor(model)
    return pred


@dataclass(frozen=True)
class TileJob:
    """What a tile task needs: the block whose tiles it predicts; small and picklable.

    Attributes:
        pair: the two scene sources and the output grid.
        block: the block (its own tiles, read window, region).
        overlap: tile overlap.
        model: the model config (the predictor itself lives in the worker).
        destinations: core of every block its tiles reach, by block index.
        comparator: the run's comparator the predictor uses on these tiles (a fitted
            classical comparator beside an identifier, DCVA's fitted selection, or a
            mask-level method with its options); ``None`` for CACH.
    """

    pair: ScenePair
    block: Block
    overlap: int
    model: ModelConfig
    destinations: dict[tuple[int, int], Window]
    comparator: RunComparator | None = None


@dataclass(frozen=True)
class WriteJob:
    """What a write task needs: the block core, the encoding, the store.

    ``threshold`` is ``None`` when the mask comes later from the scene's Otsu threshold.
    """

    index: tuple[int, int]
    core: Window
    model: ModelConfig
    store: store.StorePath
    with_classes: bool
    threshold: float | None = 0.5


@dataclass(frozen=True)
class BlockReport:
    """What a finished write task reports back.

    Attributes:
        index: the block.
        valid_pixels: pixels valid in both dates.
        write_s: seconds the task took.
        worker: the worker's name.
        histogram: pixels per encoded probability level 0..254, when the mask
            threshold is chosen after the blocks (Otsu); else ``None``.
        preview: the quicklook's scene pixels in the block, when the task kept them.
    """

    index: tuple[int, int]
    valid_pixels: int
    write_s: float
    worker: str
    histogram: tuple[int, ...] | None = None
    preview: PreviewPiece | None = None


@dataclass(frozen=True)
class BlockPixels:
    """The raw pixels of a block's read window (what a read task hands to its tile task).

    Attributes:
        t1: raw ``[C, h, w]`` of t1.
        t2: raw ``[C, h, w]`` of t2.
        valid: bool ``[h, w]``, valid in both dates.
    """

    t1: np.ndarray
    t2: np.ndarray
    valid: np.ndarray


@portable_errors
def read_block(pair: ScenePair, block: Block) -> BlockPixels | None:
    """Read both dates of a block's read window (``None`` when the block owns no tile).

    A task of its own, without the GPU resource, so a worker with two threads
    reads the next block while its GPU predicts the current one.
    """
    if block.read is None:
        return None
    progress = task_progress("dates read")
    t1, v1 = reader.read_window(pair.t1, block.read)
    progress.step(1, 2)
    t2, v2 = reader.read_window(pair.t2, block.read)
    progress.step(2, 2)
    return BlockPixels(t1, t2, v1 & v2)


def with_comparator(predictor: TilePredictor, comparator: RunComparator) -> TilePredictor:
    """The predictor using a run's fitted comparator (its optional ``with_comparator`` member).

    Raises:
        TypeError: the predictor cannot take a fitted comparator.
    """
    bind = getattr(predictor, "with_comparator", None)
    if bind is None:
        raise TypeError(f"{type(predictor).__name__} cannot use a fitted comparator")
    return bind(comparator)


@portable_errors
def predict_tiles(job: TileJob, pixels: BlockPixels | None) -> dict[tuple[int, int], Partial]:
    """Predict a block's own tiles and cut the sums per destination core.

    Returns:
        Destination block index -> the partial sums that fall in its core.
    """
    progress = task_progress("tiles predicted")
    predictor = worker_predictor(job.model)
    if job.comparator is not None:
        predictor = with_comparator(predictor, job.comparator)
    if pixels is None:  # a thin last block that owns no tile
        pixels = BlockPixels(np.zeros((len(job.pair.t1.bands), 0, 0), np.uint8),
                             np.zeros((len(job.pair.t1.bands), 0, 0), np.uint8), np.zeros((0, 0), bool))
    block_pixels = pixels  # not None here; the lambda below needs a name that stays so
    with progress.model_calls(enabled=not job.model.compile):  # a batch may take minutes on a CPU
        partial = smaller_batches_on_oom(  # a CUDA OOM: the block again with half the batch (cluster/device_memory.py)
            lambda batch: accumulate_tiles(
                block_pixels.t1, block_pixels.t2, block_pixels.valid, block=job.block, shape=job.pair.grid.shape,
                overlap=job.overlap, predictor=predictor, batch_size=batch, scale=job.pair.t1.scale,
                on_batch=progress.step,
            ),
            job.model.batch_size, key=plugin_name(job.model), what=f"block {job.block.index}",
        )
    return split_partial(partial, job.destinations)


@portable_errors
def write_block(job: WriteJob, *pieces: Partial) -> BlockReport:
    """Add the pieces that reach a block, encode, and write the block into the store.

    The write replaces whole shards of the store, so running it twice (retry
    after a lost worker, resume) writes the same bytes.
    """
    t0 = time.perf_counter()
    progress = task_progress("products written")
    pred = combine_partials(pieces, job.core)
    targets = worker_predictor(job.model).target_classes if job.with_classes else ()
    arrays = encode_products(
        pred.prob, pred.valid, threshold=job.threshold,
        class_t1=pred.class_t1, class_t2=pred.class_t2,
        target_classes=targets, with_classes=job.with_classes,
    )
    progress.step(0, len(arrays))  # encoded
    store.write_block(job.store, job.core, arrays, on_written=progress.step)
    histogram = tuple(int(v) for v in level_histogram(arrays["change_prob"])) if job.threshold is None else None
    try:
        wname = str(get_worker().name)
    except ValueError:
        wname = f"pid-{os.getpid()}"
    return BlockReport(index=job.index, valid_pixels=int(pred.valid.sum()),
                       write_s=time.perf_counter() - t0, worker=wname, histogram=histogram)
