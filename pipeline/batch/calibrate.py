"""``s2c-batch plan --calibrate`` and ``batch --plan``: run a handful of real blocks, measure, estimate.

A calibration runs the whole pipeline (the configured comparator, the model on the
workers, reads, writes, COGs, derived products) on a corner of the scene a few blocks in
size, into a temporary folder, on the cluster the command would use: ``--scheduler``,
``--cluster``, or a LocalCluster here. It measures:

- from the scheduler's task stream, the compute seconds of the run's own tasks by kind:
  tile tasks per tile pair (``s_per_pair``); reads, pieces and writes per block
  (``s_per_block``); untiled block tasks per megapixel (``s_per_mpx``);
- from the run's stage times: the fixed costs (open, model load, store; plus the
  cluster's start when the calibration starts it) and the tail (COGs, mask pass, derived
  products) per megapixel.

:mod:`.estimate` then turns the full plan (blocks, tile pairs computed, megapixels; no
pixel read) into a wall time and worker-hours for N workers.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import get_task_stream

from s2c_batch.pipeline.batch.estimate import Costs, Estimate, Workload, estimate
from s2c_batch.pipeline.cluster.connect import connect, has_gpu_workers, torch_threads_per_worker
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.scene import ScenePair, open_pair
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.run.context import RunOptions
from s2c_batch.pipeline.run.plan import make_plan, untiled
from s2c_batch.pipeline.run.runner import run_pair

#: Stages of a run that do not grow with the scene.
FIXED_STAGES = ("open", "cluster_start", "model_load", "fit", "create_store")
#: Stages after the blocks that read the whole store.
TAIL_STAGES = ("threshold", "cogs", "extras")


@dataclass(frozen=True)
class Calibration:
    """What a calibration ran and measured.

    Attributes:
        costs: the per-unit costs.
        sample: the sample's blocks, pairs, megapixels, wall time and stage times.
        task_seconds: compute seconds of the sample's tasks, by kind.
    """

    costs: Costs
    sample: dict[str, Any]
    task_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"costs": self.costs.to_dict(), "sample": self.sample,
                "task_seconds": {k: round(v, 3) for k, v in self.task_seconds.items()}}


def workload(pair: ScenePair, cfg: Config) -> Workload:
    """The blocks, tile pairs computed and megapixels of a run's plan (no pixel read)."""
    plan = make_plan(pair, cfg)
    return Workload(blocks=plan.n_blocks, pairs=0 if untiled(cfg) else plan.tiles_computed(),
                    megapixels=plan.height * plan.width / 1e6)


def sample_bbox(pair: ScenePair, cfg: Config, blocks: int) -> tuple[tuple[float, float, float, float], int]:
    """A box over the top-left corner of whole blocks, about ``blocks`` of them, in t1's CRS.

    Returns:
        The box (a quarter pixel inside the block edges, so that rounding outwards gives
        exactly the blocks) and the number of blocks it holds.
    """
    plan = make_plan(pair, cfg)
    nbi, nbj = plan.block_grid
    side = max(1, math.isqrt(max(1, blocks)))
    rows, cols = min(nbi, side), min(nbj, max(1, -(-blocks // side)))
    h, w = min(plan.height, rows * plan.block), min(plan.width, cols * plan.block)
    a = pair.grid.affine
    xs, ys = zip(*(a * (c, r) for c in (0.25, w - 0.25) for r in (0.25, h - 0.25)), strict=True)
    return (min(xs), min(ys), max(xs), max(ys)), rows * cols


def _task_seconds(stream: list[dict[str, Any]]) -> dict[str, float]:
    """Compute seconds of the s2c block tasks of a task stream, by kind (read, tiles, piece, write, block)."""
    seconds: dict[str, float] = {}
    for record in stream:
        key = str(record.get("key", ""))
        if not key.startswith("s2c-"):
            continue
        kind = key.split("-")[1]
        for ss in record.get("startstops", ()):
            if ss.get("action") == "compute":
                seconds[kind] = seconds.get(kind, 0.0) + float(ss["stop"]) - float(ss["start"])
    return seconds


def calibrate(t1: Source, t2: Source, cfg: Config, *, scheduler: str | None = None, blocks: int = 4,
              bbox: tuple[float, float, float, float] | None = None) -> Calibration:
    """Run about ``blocks`` real blocks of the scene and measure their costs.

    Args:
        t1: earlier scene.
        t2: later scene.
        cfg: the run config (its comparator and model are what is measured).
        scheduler: a running scheduler; ``None`` = a LocalCluster started here, sized as
            ``s2c-batch run`` sizes it (its start counts as a fixed cost).
        blocks: blocks to run (a corner of the scene; fewer when the scene is smaller).
        bbox: the run's AOI, if any: the sample is taken inside it.

    Raises:
        ConfigError: ``blocks`` < 1.
        InputError / OutputError: as a run.
    """
    if blocks < 1:
        raise ConfigError(f"--calibrate-blocks must be >= 1, got {blocks!r}")
    pair = open_pair(t1, t2, cfg.input, bbox=bbox, storage=cfg.storage)
    box, _ = sample_bbox(pair, cfg, blocks)
    sample_pair = open_pair(t1, t2, cfg.input, bbox=box, storage=cfg.storage)
    work = workload(sample_pair, cfg)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="s2c-calibrate-") as tmp, \
            connect(scheduler, cfg.cluster, numpy_only=not cfg.model.uses_torch) as client:
        cluster_start = time.perf_counter() - t_start if scheduler is None else 0.0
        info = client.scheduler_info(n_workers=-1)["workers"]
        threads = max(1, min(int(w.get("nthreads", 1)) for w in info.values()))
        gpu = has_gpu_workers(client)
        torch_threads = torch_threads_per_worker(client) if scheduler is None and not gpu else None
        with get_task_stream(client=client) as stream:
            result = run_pair(t1, t2, Path(tmp) / "sample", cfg,
                              RunOptions(scheduler=str(client.scheduler_info()["address"]), bbox=box,
                                         progress=False, torch_threads=torch_threads))
    seconds = _task_seconds(stream.data)
    stages = result.timings_s
    if work.pairs:
        s_pair = seconds.get("tiles", 0.0) / work.pairs
        s_block = sum(seconds.get(k, 0.0) for k in ("read", "piece", "write")) / work.blocks
        s_mpx = 0.0
    else:
        s_pair, s_block = 0.0, 0.0
        s_mpx = seconds.get("block", 0.0) / work.megapixels
    costs = Costs(
        s_per_pair=s_pair, s_per_block=s_block, s_per_mpx=s_mpx,
        fixed_s=cluster_start + sum(stages.get(k, 0.0) for k in FIXED_STAGES),
        tail_s_per_mpx=sum(stages.get(k, 0.0) for k in TAIL_STAGES) / work.megapixels,
        threads=threads, gpu=gpu, workers=len(info),
    )
    sample = {"blocks": work.blocks, "pairs": work.pairs, "megapixels": round(work.megapixels, 4),
              "bbox": list(box), "wall_s": round(cluster_start + stages.get("total", 0.0), 3),
              "timings_s": stages}
    return Calibration(costs=costs, sample=sample, task_seconds=seconds)


def plan_estimate(pair: ScenePair, cfg: Config, calibration: Calibration, workers: int | None) -> dict[str, Any]:
    """The calibration and the estimate of the pair's full plan on ``workers`` (default: the calibration's)."""
    work = workload(pair, cfg)
    n = workers or calibration.costs.workers
    est: Estimate = estimate(calibration.costs, work, n)
    return {"calibration": calibration.to_dict(),
            "workload": {"blocks": work.blocks, "pairs": work.pairs, "megapixels": round(work.megapixels, 3)},
            "estimate": est.to_dict()}
