"""A province simulated: >= 10,000 blocks on many single-threaded workers whose predictor sleeps like a GPU.

The whole ``run_change_detection`` runs, client side unchanged: the plan, the graph, the
scheduler, supervision and the watchdog, the ledger, ``run.json`` and the progress bar. The
workers are real ``dask worker`` processes on 127.0.0.1 (one thread each, no nanny), with
``bench/sleepy.py`` preloaded: their model sleeps ``--ms-per-pair`` per tile pair (155 ms:
SAM 3 and the detector with batched prompts and cached text on an H200, the naive path of
``../shared/docs/gpu-baselines.md``). Everything around it is real: each block reads its
window of both dates from a province-sized GeoTIFF (sparse: unwritten tiles read as zeros,
so it costs no disk), cuts and blends its tiles, exchanges pieces with its neighbours, and
writes its Zarr shards into a store of the province's size (only written shards exist).
COGs and derived products are off: this is about the blocks.

For each worker count (``--workers 1,2,4,8,16,24``) it runs a part of the province (whole
block rows, through ``--bbox``) sized to take about ``--seconds`` of sleep per worker, and
the whole province at the largest count (or, with ``--last-blocks N``, whole block rows
holding about N blocks of it). It reports per run: throughput (blocks/s of the
blocks stage), parallel efficiency against one worker (``efficiency``) and against sleep
alone (``sleep_bound``: the fraction of the time the workers slept), CPU seconds per block
of the scheduler process, of this client process and of the workers, and this client's
memory: its peak (``VmHWM``) and its resident memory as the blocks complete (``rss_mb_at``).

Usage::

    python bench/province.py                                   # ~20 min on 2 cores
    python bench/province.py --workers 1,4,16 --blocks 2000 --seconds 20   # a quick look
    python bench/province.py --workers 24 --last-blocks 2000   # 24 workers on a fifth of the province

The last line printed is one JSON object: ``runs`` (one row per worker count), the machine's
load average before and after, and the settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_province(folder: Path, side: int) -> tuple[Path, Path]:
    """Two sparse single-band uint8 GeoTIFFs of ``side`` x ``side`` px (1 m pixels, UTM 31N)."""
    import rasterio
    from affine import Affine

    paths = []
    for name in ("t1.tif", "t2.tif"):
        path = folder / name
        profile = {"driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint8",
                   "crs": "EPSG:32631", "transform": Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0 + side),
                   "tiled": True, "blockxsize": 512, "blockysize": 512, "sparse_ok": True, "BIGTIFF": "YES"}
        with rasterio.open(path, "w", **profile):
            pass  # nothing written: every tile reads as 0
        paths.append(path)
    return paths[0], paths[1]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Cluster:
    """A ``dask scheduler`` and ``n`` single-threaded ``dask worker`` processes on 127.0.0.1."""

    def __init__(self, n: int, ms_per_pair: float, log_dir: Path) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        # Many workers share this machine's cores here, where a real one has cores of its own: the
        # workers' statistical profiler (a sample every 10 ms) and 0.5 s system monitor are switched
        # off / slowed, so that their idle CPU does not count against the blocks.
        env = {**os.environ, "S2C_SLEEP_MS_PER_PAIR": str(ms_per_pair),
               "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
               "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s"}
        log = open(log_dir / f"cluster-{n}.log", "ab")
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", "127.0.0.1:0", "--no-show"], stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_port(port)
        self.workers = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1",
                 "--no-nanny", "--name", f"sim-{i}", "--host", "127.0.0.1", "--no-dashboard",
                 "--memory-limit", "0", "--preload", str(HERE / "sleepy.py")],
                stdout=log, stderr=subprocess.STDOUT, env=env)
            for i in range(n)
        ]
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(n, timeout=300)

    @staticmethod
    def _wait_port(port: int) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far: the scheduler's, and the workers' together."""
        return _cpu_s(self.scheduler.pid), sum(_cpu_s(w.pid) for w in self.workers)

    def stop(self) -> None:
        """Terminate every process (kill what does not stop in 10 s)."""
        procs = [*self.workers, self.scheduler]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class MemorySampler:
    """This process's resident memory every ``period`` seconds, with the blocks recorded so far."""

    def __init__(self, ledger: Path, period: float = 0.5) -> None:
        self.ledger, self.period = ledger, period
        self.samples: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="s2c-bench-memory", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                done = self.ledger.read_bytes().count(b"\n")
            except OSError:
                done = 0
            self.samples.append((done, _status_mb("VmRSS:")))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()

    def at(self, fractions: tuple[float, ...], total: int) -> dict[str, float]:
        """Resident MB at the first sample with at least each fraction of ``total`` blocks done."""
        out = {}
        for f in fractions:
            hit = [mb for done, mb in self.samples if done >= f * total]
            if hit:
                out[f"{int(f * 100)}%"] = round(hit[0], 1)
        return out


def run_part(t1: Path, t2: Path, side: int, rows: int, cfg: Any, cluster: Cluster, out: Path,
             sleep_per_block: float, workers: int) -> dict[str, Any]:
    """Run the province's first ``rows`` block rows on the cluster; measure throughput, CPU and memory."""
    from s2c_batch.pipeline.run.runner import run_change_detection

    block = cfg.tiling.block_size
    bbox = (500000.0, 5000000.0 + side - rows * block, 500000.0 + side, 5000000.0 + side)
    sampler = MemorySampler(out / ".s2c" / "blocks.done")
    sched0, work0 = cluster.cpu()
    client0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    try:
        result = run_change_detection(t1, t2, out, cfg, scheduler=cluster.address, bbox=bbox, progress=True)
    finally:
        sampler.stop()
    sampler.samples.append((result.blocks, _status_mb("VmRSS:")))
    wall = time.perf_counter() - t0
    client1 = resource.getrusage(resource.RUSAGE_SELF)
    sched1, work1 = cluster.cpu()
    n = result.blocks
    blocks_s = result.timings_s["blocks"]
    throughput = n / blocks_s
    client_cpu = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    return {
        "workers": workers,
        "blocks": n,
        "wall_s": round(wall, 1),
        "blocks_stage_s": round(blocks_s, 1),
        "blocks_per_s": round(throughput, 3),
        "sleep_bound": round(throughput * sleep_per_block / workers, 3),
        "scheduler_cpu_ms_per_block": round(1000 * (sched1 - sched0) / n, 2),
        "client_cpu_ms_per_block": round(1000 * client_cpu / n, 2),
        "workers_cpu_ms_per_block": round(1000 * (work1 - work0) / n, 1),
        "client_rss_mb_at": sampler.at((0.0, 0.1, 0.25, 0.5, 0.75, 1.0), n),
        "client_peak_mb": round(_status_mb("VmHWM:"), 1),
        "timings_s": {k: round(v, 2) for k, v in result.timings_s.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4,8,16,24", help="worker counts, ascending")
    parser.add_argument("--blocks", type=int, default=10000, help="blocks of the province (a square of blocks)")
    parser.add_argument("--block", type=int, default=256, help="tiling.block_size (and its one Zarr chunk)")
    parser.add_argument("--tile", type=int, default=128, help="tiling.tile_size; each tile pair sleeps as a 512 px one")
    parser.add_argument("--overlap", type=int, default=32, help="tiling.overlap")
    parser.add_argument("--ms-per-pair", type=float, default=155.0, help="the GPU's time per 512 px tile pair")
    parser.add_argument("--seconds", type=float, default=45.0,
                        help="sleep per worker of each part run; the largest count runs the whole province")
    parser.add_argument("--last-blocks", type=int, default=0,
                        help="blocks the largest count runs (whole rows; default 0: the whole province)")
    parser.add_argument("--keep", action="store_true", help="keep the store and logs")
    args = parser.parse_args()

    from s2c_batch.kernels.raster.tiling import TilePlan
    from s2c_batch.pipeline.config import load_config

    counts = [int(w) for w in args.workers.split(",")]
    per_side = math.ceil(math.sqrt(args.blocks))
    side = per_side * args.block
    cfg = load_config("tiny", [
        f"tiling.block_size={args.block}", f"tiling.tile_size={args.tile}", f"tiling.overlap={args.overlap}",
        f"tiling.chunk_size={args.block}",
        "input.bands=[1]", "model.identifier=none", "model.batch_size=8",
        "output.cog=false", "output.stac=false", "output.quicklook=false", "output.polygons=false",
    ])
    plan = TilePlan(side, side, args.tile, args.overlap, args.block)
    pairs_per_block = plan.n_tiles / plan.n_blocks
    sleep_per_block = pairs_per_block * args.ms_per_pair / 1000.0
    workdir = Path(tempfile.mkdtemp(prefix="s2c-province-"))
    load_before = os.getloadavg()
    runs = []
    try:
        t1, t2 = make_province(workdir, side)
        print(json.dumps({"province_px": side, "blocks": plan.n_blocks, "tiles": plan.n_tiles,
                          "pairs_per_block": round(pairs_per_block, 2),
                          "sleep_per_block_s": round(sleep_per_block, 3)}), file=sys.stderr)
        for w in counts:
            if w == counts[-1]:
                rows = min(per_side, math.ceil(args.last_blocks / per_side)) if args.last_blocks else per_side
            else:
                rows = min(per_side, max(1, math.ceil(w * args.seconds / sleep_per_block / per_side)))
            cluster = Cluster(w, args.ms_per_pair, workdir)
            try:
                row = run_part(t1, t2, side, rows, cfg, cluster, workdir / f"out-{w}", sleep_per_block, w)
            finally:
                cluster.stop()
            row["loadavg_1m"] = round(os.getloadavg()[0], 2)
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
            if not args.keep:
                shutil.rmtree(workdir / f"out-{w}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    one = runs[0]["blocks_per_s"] / counts[0]
    for row in runs:
        row["efficiency"] = round(row["blocks_per_s"] / (row["workers"] * one), 3)
    print(json.dumps({"runs": runs, "ms_per_pair": args.ms_per_pair, "block": args.block, "tile": args.tile,
                      "overlap": args.overlap,
                      "pairs_per_block": round(pairs_per_block, 2), "sleep_per_block_s": round(sleep_per_block, 3),
                      "province_px": side, "province_blocks": plan.n_blocks, "cores": os.cpu_count(),
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
