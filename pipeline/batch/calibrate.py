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

from s2c_batch.pipeline.batch.estimate import Costs, Estimate, Workload, block_work, estimate
from s2c_batch.pipeline.batch.runs_file import RunsFile
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


def plan_night(runs: RunsFile, *, scheduler: str | None = None, workers: int | None = None,
               max_concurrent: int = 2, blocks: int = 4) -> dict[str, Any]:
    """Estimate a night's runs file: one calibration per distinct config, every run's plan, the night's total.

    The runs share one cluster, so their block work adds up over the workers. The fixed
    costs are paid once per distinct config (the cluster's start, each model's load). With
    ``max_concurrent`` >= 2 a run's COGs and derived products overlap the next run's blocks,
    so only the last run's tail adds to the night; with 1, every tail does.

    Args:
        runs: the parsed RUNS.yaml.
        scheduler: the cluster to calibrate on; ``None`` = a LocalCluster here.
        workers: workers to estimate for; ``None`` = the calibration cluster's.
        max_concurrent: runs in flight at once (``batch --max-concurrent``).
        blocks: blocks each calibration runs.
    """
    calibrations: dict[str, tuple[str, Calibration]] = {}
    rows = []
    for spec in runs.runs:
        pair = open_pair(spec.t1, spec.t2, spec.cfg.input, bbox=spec.bbox, storage=spec.cfg.storage)
        key = spec.cfg.hash()
        if key not in calibrations:
            calibrations[key] = (spec.name, calibrate(spec.t1, spec.t2, spec.cfg, scheduler=scheduler,
                                                      blocks=blocks, bbox=spec.bbox))
        rows.append((spec, workload(pair, spec.cfg), calibrations[key][1]))
    n = workers or next(iter(calibrations.values()))[1].costs.workers
    per_run = [(spec, work, estimate(cal.costs, work, n, with_fixed=False)) for spec, work, cal in rows]
    fixed = sum(cal.costs.fixed_s for _, cal in calibrations.values())
    lanes_s = sum(block_work(cal.costs, work) / (n * max(1, cal.costs.threads)) for _, work, cal in rows)
    gpu_s = sum(work.pairs * cal.costs.s_per_pair / n for _, work, cal in rows if cal.costs.gpu)
    tails = [est.tail_s for _, _, est in per_run]
    tail = (tails[-1] if tails else 0.0) if max_concurrent > 1 else sum(tails)
    night = Estimate(workers=n, wall_s=fixed + max(lanes_s, gpu_s) + tail, fixed_s=fixed,
                     blocks_s=max(lanes_s, gpu_s), tail_s=tail,
                     work_s=sum(block_work(cal.costs, work) for _, work, cal in rows))
    return {
        "runs_file": str(runs.path),
        "calibrations": {name: {"config_hash": key, **cal.to_dict()} for key, (name, cal) in calibrations.items()},
        "runs": [{"name": spec.name, "blocks": work.blocks, "pairs": work.pairs,
                  "megapixels": round(work.megapixels, 3), "blocks_s": round(est.blocks_s, 1),
                  "tail_s": round(est.tail_s, 1)} for spec, work, est in per_run],
        "night": night.to_dict(),
    }
