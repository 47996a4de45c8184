"""Pipeline benchmark: throughput against the model alone, and memory against scene size.

Runs the full ``run_change_detection`` on synthetic scenes (``s2c-batch synth``)
on a fresh LocalCluster per scene, and reads each worker's peak resident memory
(``ru_maxrss``) before the cluster closes. In the same run, it times the
predictor alone on tiles already in memory, for the same number of tile pairs
the pipeline computed, so the two throughputs compare on one machine at one
moment.

Usage::

    python bench/pipeline.py                      # CPU, tiny config, ~1 minute
    python bench/pipeline.py --config cva --small 5000 --large 20000 --block 2048

The last line printed is one JSON object with at least ``pipeline_mpx_s``,
``model_mpx_s``, ``ratio``, ``peak_mb_small``, ``peak_mb_large``,
``memory_ratio`` and ``device``.
"""

from __future__ import annotations

import argparse
import json
import logging
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_scene(size: int, seed: int, cfg: Any, workdir: Path, n_workers: int) -> dict[str, Any]:
    """Synthesise a scene, run the pipeline on a fresh LocalCluster, report time and memory."""
    from distributed import Client, LocalCluster

    from s2c_batch.pipeline.plan import make_plan
    from s2c_batch.pipeline.run import run_change_detection
    from s2c_batch.pipeline.scene import open_pair
    from s2c_batch.pipeline.synth import write_synthetic_pair

    scene = write_synthetic_pair(workdir / f"scene{size}", size=size, seed=seed, overwrite=True)
    plan = make_plan(open_pair(scene.t1, scene.t2, cfg.input), cfg)
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address="127.0.0.1:0", host="127.0.0.1",
                           memory_limit=cfg.cluster.memory_limit, silence_logs=logging.CRITICAL)
    client = Client(cluster)
    try:
        base = client.run(_worker_peak_mb)
        t0 = time.perf_counter()
        res = run_change_detection(scene.t1, scene.t2, workdir / f"out{size}", cfg,
                                   scheduler=cluster.scheduler_address, progress=False)
        wall = time.perf_counter() - t0
        peaks = client.run(_worker_peak_mb)
    finally:
        client.close()
        cluster.close()
    return {
        "size": size,
        "megapixels": size * size / 1e6,
        "blocks": res.blocks,
        "tiles_computed": plan.tiles_computed(),
        "tiles_unique": plan.n_tiles,
        "wall_s": wall,
        "blocks_s": res.timings_s.get("blocks", wall),
        "peak_mb": max(peaks.values()),
        "idle_mb": max(base.values()),
    }


def model_alone(cfg: Any, n_tiles: int, max_seconds: float = 30.0) -> dict[str, Any]:
    """Seconds per tile pair of the predictor alone on random tiles already in memory."""
    from s2c_batch.pipeline.worker import make_predictor

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
    return {"s_per_pair": sec, "device": str(device), "pairs_timed": done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="config name or file (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="SECTION.KEY=VALUE")
    parser.add_argument("--small", type=int, default=1024, help="side of the small scene")
    parser.add_argument("--large", type=int, default=2048, help="side of the large scene (4x area = 2x side)")
    parser.add_argument("--block", type=int, default=None, help="tiling.block_size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scenes and outputs")
    args = parser.parse_args()

    from s2c_batch.pipeline.config import load_config

    overrides = list(args.overrides) + ([f"tiling.block_size={args.block}"] if args.block else [])
    cfg = load_config(args.config, overrides)
    workdir = Path(tempfile.mkdtemp(prefix="s2c-bench-"))
    try:
        small = run_scene(args.small, args.seed, cfg, workdir, args.workers)
        print(json.dumps({"scene": small}), file=sys.stderr)
        large = run_scene(args.large, args.seed + 1, cfg, workdir, args.workers)
        print(json.dumps({"scene": large}), file=sys.stderr)
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
        "tile_redundancy": round(large["tiles_computed"] / large["tiles_unique"], 3),
        "peak_mb_small": round(small["peak_mb"], 1),
        "peak_mb_large": round(large["peak_mb"], 1),
        "memory_ratio": round(large["peak_mb"] / small["peak_mb"], 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
