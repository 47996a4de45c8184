"""Watchdog benchmark: how fast block tasks progress, and how close the watchdog came to a stall.

Runs the full ``run_change_detection`` on one synthetic pair (``s2c-batch synth``) on a
fresh LocalCluster, while a sampler reads every worker's progress report from the
scheduler (``Client.scheduler_info``: what the watchdog reads, see
``pipeline/cluster/progress.py``) about four times a second. It reports:

- ``s_per_tile``: seconds of the tiles tasks from their start to their last step seen,
  per tile predicted by then (``tiles_timed`` of ``tiles``: a task's last step may end
  it before a report shows it); ``step_s``: the median seconds per tile batch the workers measured;
- ``reports_per_s``: progress reports (heartbeats) per second and worker;
  ``steps_per_s``: steps of the run's block tasks per second of their running;
- ``headroom``: for every kind of block task, the largest ``idle_s / deadline`` seen
  (the watchdog restarts a task at 1; the deadline computed by the watchdog's own rule,
  ``pipeline/cluster/deadlines.py``, from the report of the moment);
- ``peak_mb``: each worker's peak resident memory (``VmHWM``) before the cluster closes;
- ``stalls``: ``run.json``'s stalls (none expected of a task that progresses).

Usage::

    python bench/watchdog.py --config tiny --size 2048 --set tiling.block_size=2048 \
        --set cluster.stall_min_s=10                          # issue 30's first case, minutes
    python bench/watchdog.py --config full --size 1024 --workers 1   # the real sizes on a CPU: long
    python bench/watchdog.py --config tiny --hook-cost                # what counting layers costs

``full`` is ``configs/default.yaml`` with ``model.random_init=true`` (seeded random weights
of the real architecture: speed does not depend on the values). The last line printed is
one JSON object; a line per step seen goes to stderr (with the worker's memory then), so
a run stopped early still says how far it came.

``--hook-cost`` times the predictor alone instead (one torch thread, CPU time of this
process) with and without a global forward hook like the one through which a tiles task
counts its model's layers as progress, interleaved: ``hook_cost_ratio`` = with / without.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")

#: Seconds between two looks at the scheduler.
SAMPLE_S = 0.25


def _worker_peak_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM`` (see bench/pipeline.py)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Sampler(threading.Thread):
    """Reads the workers' progress reports from the scheduler until stopped."""

    def __init__(self, address: str, rule: Any) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.address, self.rule = address, rule
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.seqs: dict[str, list[tuple[float, int]]] = defaultdict(list)  # worker -> (time, seq)
        self.tasks: dict[str, dict[str, Any]] = {}  # key -> its last report
        self.kinds: dict[str, dict[str, Any]] = {}  # kind -> its last measure
        self.headroom: dict[str, float] = defaultdict(float)  # kind of task -> max idle_s / deadline

    def run(self) -> None:
        from distributed import Client

        from s2c_batch.pipeline.cluster.progress import METRIC, task_label

        try:
            with Client(self.address, timeout="60s", set_as_default=False) as client:
                while not self.stop.is_set():
                    now = time.time()
                    for worker, info in client.scheduler_info(n_workers=-1)["workers"].items():
                        report = (info.get("metrics") or {}).get(METRIC)
                        if not isinstance(report, dict):
                            continue
                        seqs = self.seqs[worker]
                        if not seqs or seqs[-1][1] != report["seq"]:
                            seqs.append((now, int(report["seq"])))
                        self.kinds.update(report.get("kinds", {}))
                        for key, task in report.get("tasks", {}).items():
                            label = task_label(key)
                            if label is None:
                                continue
                            if task["steps"] != self.tasks.get(key, {}).get("steps"):  # a sample per step
                                rss = (info.get("metrics") or {}).get("memory", 0)
                                print(json.dumps({"t": round(now, 1), "worker": worker, "task": key,
                                                  **{k: task[k] for k in ("steps", "done", "total", "running_s")},
                                                  "rss_mb": round(rss / 2**20)}), file=sys.stderr, flush=True)
                            self.tasks[key] = dict(task)
                            deadline, _ = self.rule.deadline(report.get("kinds", {}).get(label))
                            kind = key.split("-")[1]
                            self.headroom[kind] = max(self.headroom[kind], float(task["idle_s"]) / deadline)
                    self.stop.wait(SAMPLE_S)
        except BaseException as exc:  # reported with the result
            self.error = exc


def run(cfg: Any, size: int, seed: int, workdir: Path, n_workers: int | None) -> dict[str, Any]:
    """One run on a fresh LocalCluster, sampled; what the module docstring lists."""
    from s2c_batch.pipeline.cluster.connect import connect, has_gpu_workers, torch_threads_per_worker
    from s2c_batch.pipeline.cluster.deadlines import Rule
    from s2c_batch.pipeline.run.runner import run_change_detection
    from s2c_batch.pipeline.synth.pair import write_synthetic_pair

    scene = write_synthetic_pair(workdir / f"scene{size}", size=size, seed=seed, overwrite=True)
    rule = Rule(min_s=cfg.cluster.stall_min_s, factor=cfg.cluster.stall_factor,
                idle_min_s=cfg.cluster.stall_idle_min_s)
    out = workdir / "out"
    cluster_cfg = cfg.cluster if n_workers is None else replace(cfg.cluster, n_workers=n_workers)
    with connect(None, cluster_cfg) as client:
        threads = None if has_gpu_workers(client) else torch_threads_per_worker(client)
        sampler = Sampler(client.scheduler.address, rule)
        sampler.start()
        t0 = time.perf_counter()
        try:
            res = run_change_detection(scene.t1, scene.t2, out, cfg, scheduler=client.scheduler.address,
                                       progress=False, torch_threads=threads, overwrite=True)
        finally:
            sampler.stop.set()
            sampler.join(30)
        wall = time.perf_counter() - t0
        peaks = client.run(_worker_peak_mb)
    runjson = json.loads((out / "run.json").read_text())
    tiles = [t for k, t in sampler.tasks.items() if k.startswith("s2c-tiles-") and t["done"]]
    predicted = sum(int(t["done"]) for t in tiles)  # as of the last report seen (the last step may be unseen)
    busy = sum(float(t["running_s"]) - float(t["idle_s"]) for t in tiles)
    steps = sum(int(t["steps"]) for t in sampler.tasks.values())
    running = sum(float(t["running_s"]) - float(t["idle_s"]) for t in sampler.tasks.values())
    rates = []
    for seqs in sampler.seqs.values():
        if len(seqs) > 1 and seqs[-1][0] > seqs[0][0]:
            rates.append((seqs[-1][1] - seqs[0][1]) / (seqs[-1][0] - seqs[0][0]))
    tiles_kind = [v for k, v in sampler.kinds.items() if k.startswith("s2c-tiles-")]
    step_s = statistics.median(v["step_s"] for v in tiles_kind) if tiles_kind else None
    return {
        "size": size,
        "workers": len(peaks),
        "torch_threads": threads,
        "status": res.status,
        "wall_s": round(wall, 1),
        "blocks_s": round(res.timings_s.get("blocks", wall), 1),
        "tiles": sum(int(t["total"]) for t in tiles),
        "tiles_timed": predicted,
        "s_per_tile": round(busy / predicted, 3) if predicted else None,
        "step_s": None if step_s is None else round(step_s, 3),
        "deadline_s": None if step_s is None else round(rule.deadline({"steps": 1, "step_s": step_s})[0], 1),
        "steps": steps,
        "steps_per_s": round(steps / running, 3) if running else None,
        "reports_per_s": round(statistics.median(rates), 2) if rates else None,
        "headroom": {k: round(v, 3) for k, v in sorted(sampler.headroom.items())},
        "peak_mb": {w: round(v, 1) for w, v in sorted(peaks.items())},
        "stalls": runjson.get("stalls", []),
        "sampler_error": None if sampler.error is None else repr(sampler.error),
    }


def hook_cost(cfg: Any, repeats: int = 6) -> dict[str, Any]:
    """CPU seconds per batch of the predictor with and without a global forward hook, interleaved."""
    import numpy as np
    import torch

    from s2c_batch.pipeline.run.worker import make_predictor

    torch.set_num_threads(1)
    pred = make_predictor(cfg.model)
    calls = [0]

    def hook(module: Any, args: Any, output: Any) -> None:  # as cheap as progress.py's: note one number
        calls[0] += 1

    bs, t, c = cfg.model.batch_size, cfg.tiling.tile_size, len(cfg.input.bands)
    rng = np.random.default_rng(0)
    a, b = rng.random((bs, c, t, t), dtype=np.float32), rng.random((bs, c, t, t), dtype=np.float32)
    pred.predict(a, b)  # warm-up
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeats):
        for mode in ("off", "on"):
            handle = torch.nn.modules.module.register_module_forward_hook(hook) if mode == "on" else None
            t0 = time.process_time()
            pred.predict(a, b)
            seconds[mode].append(time.process_time() - t0)
            if handle is not None:
                handle.remove()
    off, on = statistics.median(seconds["off"]), statistics.median(seconds["on"])
    return {"batch_size": bs, "calls_per_batch": calls[0] // repeats, "cpu_s_per_batch": round(off, 4),
            "cpu_s_per_batch_hooked": round(on, 4), "hook_cost_ratio": round(on / off, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="tiny, full, a packaged config name or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="SECTION.KEY=VALUE")
    parser.add_argument("--size", type=int, default=2048, help="side of the synthetic pair in pixels")
    parser.add_argument("--workers", type=int, default=None, help="cluster.n_workers (default: the config's)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the scene and the output")
    parser.add_argument("--hook-cost", action="store_true", help="time the layer-counting hook instead")
    args = parser.parse_args()

    from s2c_batch.pipeline.config import load_config

    name, overrides = args.config, list(args.overrides)
    if name == "full":
        name, overrides = "default", ["model.random_init=true", *overrides]
    cfg = load_config(name, overrides)
    if args.hook_cost:
        print(json.dumps({"config": args.config, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                          **hook_cost(cfg)}))
        return
    workdir = Path(tempfile.mkdtemp(prefix="s2c-bench-watchdog-"))
    try:
        result = run(cfg, args.size, args.seed, workdir, args.workers)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result = {"config": args.config, "overrides": args.overrides, "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} CPUs", **result}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
