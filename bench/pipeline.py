"""Pipeline benchmark: throughput against the model alone, and memory against scene size.

Runs the full ``run_change_detection`` on synthetic scenes (``s2c-batch synth``)
on a fresh LocalCluster per scene, and reads each worker's peak resident memory
(``VmHWM``) before the cluster closes. In the same run, it times the
predictor alone on tiles already in memory, for the same number of tile pairs
the pipeline computed, so the two throughputs compare on one machine at one
moment.

Usage::

    python bench/pipeline.py                      # CPU, tiny config, ~2 minutes
    python bench/pipeline.py --config cva --small 5000 --large 20000 --block 2048

The last line printed is one JSON object with at least ``pipeline_mpx_s``,
``model_mpx_s``, ``ratio``, ``peak_mb_small``, ``peak_mb_large``,
``memory_ratio`` and ``device``, and the scaling from 1 to ``--workers`` workers on
the large scene (``scaling`` = wall time with 1 worker / wall time with ``--workers``).

Scenes read from and products written to object storage, against local files:
``bench/remote.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")


def _worker_peak_mb() -> float:
    """This process's peak resident memory (MB).

    ``VmHWM`` rather than ``ru_maxrss``: a worker is spawned (fork + exec) by a
    process that already holds torch and the scenes, and Linux carries the
    parent's ``ru_maxrss`` across exec, which would hide the worker's own growth.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # not Linux


def _worker_peak_gpu_mb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_initialized() else 0.0


def synth_scene(size: int, seed: int, workdir: Path) -> Any:
    """A synthetic pair of ``size`` x ``size`` pixels (``s2c-batch synth``)."""
    from s2c_batch.pipeline.synth.pair import write_synthetic_pair

    return write_synthetic_pair(workdir / f"scene{size}", size=size, seed=seed, overwrite=True)


def run_scene(scene: Any, size: int, cfg: Any, workdir: Path, n_workers: int) -> dict[str, Any]:
    """Run the pipeline on a fresh LocalCluster sized as ``s2c-batch run`` sizes its own.

    One worker process per GPU resource (two threads) or CPU workers whose torch
    threads share the cores, exactly as :func:`~s2c_batch.pipeline.cluster.connect.connect`
    starts them; ``n_workers`` on one GPU means workers sharing it.
    """
    from dataclasses import replace

    from s2c_batch.pipeline.cluster.connect import connect, has_gpu_workers, torch_threads_per_worker
    from s2c_batch.pipeline.inputs.scene import open_pair
    from s2c_batch.pipeline.run.plan import make_plan
    from s2c_batch.pipeline.run.runner import run_change_detection

    plan = make_plan(open_pair(scene.t1, scene.t2, cfg.input), cfg)
    with connect(None, replace(cfg.cluster, n_workers=n_workers)) as client:
        threads = None if has_gpu_workers(client) else torch_threads_per_worker(client)
        base = client.run(_worker_peak_mb)
        t0 = time.perf_counter()
        res = run_change_detection(scene.t1, scene.t2, workdir / f"out{size}-{n_workers}w", cfg,
                                   scheduler=client.scheduler.address, progress=False,
                                   torch_threads=threads, overwrite=True)
        wall = time.perf_counter() - t0
        peaks = client.run(_worker_peak_mb)
        gpu_peaks = client.run(_worker_peak_gpu_mb)
    return {
        "size": size,
        "workers": n_workers,
        "torch_threads": threads,
        "megapixels": size * size / 1e6,
        "blocks": res.blocks,
        "tiles_computed": plan.tiles_computed(),
        "tiles_unique": plan.n_tiles,
        "wall_s": wall,
        "blocks_s": res.timings_s.get("blocks", wall),
        "peak_mb": max(peaks.values()),
        "idle_mb": max(base.values()),
        "peak_gpu_mb": max(gpu_peaks.values()),
        "timings_s": {k: round(v, 2) for k, v in res.timings_s.items()},
    }


def model_alone(cfg: Any, n_tiles: int, max_seconds: float = 30.0) -> dict[str, Any]:
    """Seconds per tile pair of the predictor alone on random tiles already in memory."""
    import torch

    from s2c_batch.pipeline.run.worker import make_predictor

    torch.set_num_threads(os.cpu_count() or 1)  # the ceiling: the whole machine on the model
    pred = make_predictor(cfg.model)
    bs, t, c = cfg.model.batch_size, cfg.tiling.tile_size, len(cfg.input.bands)
    rng = np.random.default_rng(0)
    a = rng.random((bs, c, t, t), dtype=np.float32)
    b = rng.random((bs, c, t, t), dtype=np.float32)
    pred.predict(a, b)  # warm-up
    done, t0 = 0, time.perf_counter()
    while done < n_tiles and time.perf_counter() - t0 < max_seconds:
        pred.predict(a, b)
        done += bs
    sec = (time.perf_counter() - t0) / done
    device = getattr(pred, "device", "cpu")
    return {"s_per_pair": sec, "device": str(device), "pairs_timed": done, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="config name or file (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="SECTION.KEY=VALUE")
    parser.add_argument("--small", type=int, default=1024,
                        help="side of the small scene (0: skip it, and with it the memory ratio)")
    parser.add_argument("--large", type=int, default=2048, help="side of the large scene (4x area = 2x side)")
    parser.add_argument("--block", type=int, default=None, help="tiling.block_size")
    parser.add_argument("--workers", type=int, default=2, help="workers for the two scenes")
    parser.add_argument("--scaling-workers", type=int, default=None,
                        help="also run the large scene with this many workers (default: 1 if --workers > 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scenes and outputs")
    args = parser.parse_args()

    from s2c_batch.pipeline.config import load_config

    overrides = list(args.overrides) + ([f"tiling.block_size={args.block}"] if args.block else [])
    cfg = load_config(args.config, overrides)
    other = args.scaling_workers if args.scaling_workers is not None else (1 if args.workers > 1 else None)
    workdir = Path(tempfile.mkdtemp(prefix="s2c-bench-"))
    try:
        small = None
        if args.small:
            small = run_scene(synth_scene(args.small, args.seed, workdir), args.small, cfg, workdir, args.workers)
            print(json.dumps({"scene": small}), file=sys.stderr)
        large_scene = synth_scene(args.large, args.seed + 1, workdir)
        large = run_scene(large_scene, args.large, cfg, workdir, args.workers)
        print(json.dumps({"scene": large}), file=sys.stderr)
        scaled = None
        if other:
            scaled = run_scene(large_scene, args.large, cfg, workdir, other)
            print(json.dumps({"scene": scaled}), file=sys.stderr)
        model = model_alone(cfg, large["tiles_computed"])
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    # Model alone (all its threads) on the scene's unique tiles vs the pipeline (all its workers),
    # same machine, same run. Tiles the pipeline computes twice (block borders) count as its cost.
    model_s = model["s_per_pair"] * large["tiles_unique"]
    result = {
        "config": args.config,
        "device": model["device"],
        "workers": args.workers,
        "small_px": args.small,
        "large_px": args.large,
        "block_size": cfg.tiling.block_size,
        "pipeline_mpx_s": round(large["megapixels"] / large["wall_s"], 3),
        "pipeline_blocks_mpx_s": round(large["megapixels"] / large["blocks_s"], 3),
        "model_mpx_s": round(large["megapixels"] / model_s, 3),
        "ratio": round(model_s / large["wall_s"], 3),
        "ms_per_pair_model": round(1000 * model["s_per_pair"], 3),
        "model_threads": model["threads"],
        "tile_redundancy": round(large["tiles_computed"] / large["tiles_unique"], 3),
        "peak_mb_large": round(large["peak_mb"], 1),
        "peak_gpu_mb_large": round(large["peak_gpu_mb"], 1),
        "timings_s_large": large["timings_s"],
    }
    if small is not None:
        result["peak_mb_small"] = round(small["peak_mb"], 1)
        result["memory_ratio"] = round(large["peak_mb"] / small["peak_mb"], 3)
    if scaled is not None:
        # Same scene, same run: throughput with --workers over throughput with --scaling-workers.
        result[f"pipeline_mpx_s_{other}w"] = round(scaled["megapixels"] / scaled["wall_s"], 3)
        result[f"pipeline_mpx_s_{args.workers}w"] = result["pipeline_mpx_s"]
        result["scaling"] = round(scaled["wall_s"] / large["wall_s"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
