"""Side by side with the obvious peer: what a competent Pangeo user writes in 40 lines.

The peer of the pointwise path (``--config cva``): ``rioxarray.open_rasterio`` of both
dates in 2048-px chunks, the same CVA formula through ``dask.array.map_overlap`` with a
128-px overlap, ``to_zarr`` (Zarr v3), then ``rio.to_raster(driver="COG")`` for both
products, on a 2-worker LocalCluster. The peer of the model path (``--model``): the tiny
config's model held once per worker process (a module-level cache), run over
``map_overlap`` chunks of the block size with the tile overlap as depth, tiles averaged.

Each contender runs as its own process (``s2c-batch run`` with extras off, with the
default extras on, and the peer), alternating, ``--reps`` times; wall time is the best of
the reps, memory the peak resident set of the whole process tree (sampled every 0.1 s).
The pixels of s2c-batch and the CVA peer are compared. Prints one JSON line per scene
size, the last line a summary.

    python bench/peer.py --sizes 4096,8192,16384 --reps 2
    python bench/peer.py --model --sizes 2048 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "peer"
CLI = [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()"]
_MODEL_CACHE: dict[str, Any] = {}


# --- the peers (run in their own process: python bench/peer.py --run-peer ...) ------------

def peer_cva(t1: str, t2: str, out: str, chunk: int, overlap: int) -> None:
    """CVA as a Pangeo user writes it: map_overlap, to_zarr, rio.to_raster COGs."""
    import dask.array as da
    import rioxarray
    import xarray as xr
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster):
        a = rioxarray.open_rasterio(t1, chunks={"band": -1, "y": chunk, "x": chunk}, lock=False)
        b = rioxarray.open_rasterio(t2, chunks={"band": -1, "y": chunk, "x": chunk}, lock=False)
        c = a.shape[0]

        def cva(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            fa = x.astype(np.float32) / np.float32(255)
            fb = y.astype(np.float32) / np.float32(255)
            d = fa - fb
            return np.minimum(np.float32(1), np.sqrt(np.sum(d * d, axis=0, dtype=np.float32)) / np.float32(np.sqrt(c)))

        p = da.map_overlap(cva, a.data, b.data, depth=(0, overlap, overlap), boundary="none", drop_axis=0,
                           dtype=np.float32)
        coords = {"y": a.y, "x": a.x}
        ds = xr.Dataset({"change_prob": (("y", "x"), da.rint(p * np.float32(254)).astype(np.uint8)),
                         "change_mask": (("y", "x"), (p > np.float32(0.5)).astype(np.uint8))}, coords=coords)
        ds = ds.rio.write_crs(a.rio.crs).rio.write_transform(a.rio.transform())
        ds.to_zarr(Path(out) / "change.zarr", zarr_format=3, mode="w", consolidated=False)
        stored = xr.open_zarr(Path(out) / "change.zarr", decode_coords="all", consolidated=False)
        for name in ("change_prob", "change_mask"):
            stored[name].rio.write_crs(a.rio.crs).rio.to_raster(Path(out) / f"{name}.tif", driver="COG")


def _model_block(x: np.ndarray, y: np.ndarray, *, tile: int, overlap: int) -> np.ndarray:
    """The tiny model over one chunk (with its halo): tiles every ``tile - overlap``, averaged."""
    import torch

    from s2c_batch.kernels.predictors.build import build_predictor
    from s2c_batch.pipeline.config import load_config

    pred = _MODEL_CACHE.get("tiny")
    if pred is None:
        torch.set_num_threads(1)
        pred = _MODEL_CACHE["tiny"] = build_predictor(load_config("tiny").model)
    h, w = x.shape[1:]
    step = tile - overlap
    rows = sorted({min(r, max(h - tile, 0)) for r in range(0, max(h - overlap, 1), step)})
    cols = sorted({min(c, max(w - tile, 0)) for c in range(0, max(w - overlap, 1), step)})
    acc = np.zeros((h, w), np.float32)
    cnt = np.zeros((h, w), np.float32)
    boxes = [(r, c) for r in rows for c in cols]
    for i in range(0, len(boxes), 4):
        batch = boxes[i : i + 4]
        a = np.stack([x[:, r : r + tile, c : c + tile] for r, c in batch]).astype(np.float32) / 255
        b = np.stack([y[:, r : r + tile, c : c + tile] for r, c in batch]).astype(np.float32) / 255
        prob = pred.predict(a, b).prob
        for (r, c), p in zip(batch, prob, strict=True):
            acc[r : r + tile, c : c + tile] += p[: min(tile, h - r), : min(tile, w - c)]
            cnt[r : r + tile, c : c + tile] += 1
    return acc / np.maximum(cnt, 1)


def peer_model(t1: str, t2: str, out: str, chunk: int, overlap: int, tile: int) -> None:
    """The tiny model as a Pangeo user writes it: map_overlap over a per-process cached model."""
    import dask.array as da
    import rioxarray
    import xarray as xr
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster):
        a = rioxarray.open_rasterio(t1, chunks={"band": -1, "y": chunk, "x": chunk}, lock=False)
        b = rioxarray.open_rasterio(t2, chunks={"band": -1, "y": chunk, "x": chunk}, lock=False)
        p = da.map_overlap(_model_block, a.data, b.data, depth=(0, overlap, overlap), boundary="none",
                           drop_axis=0, dtype=np.float32, tile=tile, overlap=overlap)
        ds = xr.Dataset({"change_prob": (("y", "x"), da.rint(p * np.float32(254)).astype(np.uint8)),
                         "change_mask": (("y", "x"), (p > np.float32(0.5)).astype(np.uint8))},
                        coords={"y": a.y, "x": a.x})
        ds.rio.write_crs(a.rio.crs).to_zarr(Path(out) / "change.zarr", zarr_format=3, mode="w", consolidated=False)


# --- the harness -----------------------------------------------------------------------------

def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall seconds, CPU seconds, peak resident MB of its whole process tree).

    CPU seconds (user + system of the process and every descendant it waited for) are
    less sensitive than wall time to other work on a shared machine.
    """
    import resource

    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise RuntimeError(f"{cmd[3:6]} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return wall, cpu, peak / 2**20


def scene(size: int) -> tuple[Path, Path]:
    """A synthetic pair of ``size`` px (cached under bench/out/peer)."""
    folder = OUT / f"scene-{size}"
    if not (folder / "t2.tif").exists():
        subprocess.run([*CLI, "synth", str(folder), "--size", str(size), "--seed", "1"], check=True,
                       stdout=subprocess.DEVNULL)
    return folder / "t1.tif", folder / "t2.tif"


def same_pixels(a: Path, b: Path) -> bool:
    """Whether two COGs hold the same pixels (compared window by window)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(a) as x, rasterio.open(b) as y:
        if x.shape != y.shape:
            return False
        for r in range(0, x.height, 2048):
            win = Window(0, r, x.width, min(2048, x.height - r))
            if not np.array_equal(x.read(1, window=win), y.read(1, window=win)):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4096,8192,16384")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--model", action="store_true", help="the model path (tiny config) instead of cva")
    parser.add_argument("--run-peer", nargs=3, metavar=("T1", "T2", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_peer:
        t1, t2, out = args.run_peer
        if args.model:
            peer_model(t1, t2, out, chunk=args.block, overlap=64, tile=256)
        else:
            peer_cva(t1, t2, out, chunk=args.block, overlap=128)
        return

    config = ["--config", "tiny"] if args.model else ["--config", "cva", "--set", f"tiling.block_size={args.block}"]
    off = ["--set", "output.stac=false", "--set", "output.quicklook=false", "--set", "output.polygons=false"]
    rows = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        t1, t2 = scene(size)
        base = OUT / f"runs-{size}"
        contenders: dict[str, list[str]] = {
            "s2c_extras_off": [*CLI, "run", str(t1), str(t2), "--out", str(base / "off"), *config, *off,
                               "--no-progress", "--overwrite"],
            "s2c_extras_on": [*CLI, "run", str(t1), str(t2), "--out", str(base / "on"), *config,
                              "--no-progress", "--overwrite"],
            "peer": [sys.executable, __file__, "--run-peer", str(t1), str(t2), str(base / "peer"),
                     "--block", str(args.block), *(["--model"] if args.model else [])],
        }
        if args.model:
            contenders.pop("s2c_extras_on")
        times: dict[str, list[float]] = {k: [] for k in contenders}
        cpus: dict[str, list[float]] = {k: [] for k in contenders}
        peaks: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.reps):
            for name, cmd in contenders.items():
                (base / "peer").mkdir(parents=True, exist_ok=True)
                wall, cpu, peak = measure(cmd, env={**os.environ, "DASK_LOGGING__DISTRIBUTED": "critical"})
                times[name].append(wall)
                cpus[name].append(cpu)
                peaks[name].append(peak)
        best = {k: min(v) for k, v in times.items()}
        cpu_best = {k: min(v) for k, v in cpus.items()}
        row: dict[str, Any] = {"size": size, "model": args.model, "reps": args.reps,
                               "seconds": {k: round(v, 2) for k, v in best.items()},
                               "cpu_seconds": {k: round(v, 2) for k, v in cpu_best.items()},
                               "peak_mb": {k: round(max(v)) for k, v in peaks.items()},
                               "ratio_extras_off": round(best["s2c_extras_off"] / best["peer"], 3),
                               "cpu_ratio_extras_off": round(cpu_best["s2c_extras_off"] / cpu_best["peer"], 3),
                               "load_average": round(os.getloadavg()[0], 2)}
        if "s2c_extras_on" in best:
            row["ratio_extras_on"] = round(best["s2c_extras_on"] / best["peer"], 3)
            row["cpu_ratio_extras_on"] = round(cpu_best["s2c_extras_on"] / cpu_best["peer"], 3)
        if not args.model:
            row["pixels_agree"] = all(same_pixels(base / "off" / f"{n}.tif", base / "peer" / f"{n}.tif")
                                      for n in ("change_prob", "change_mask"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {"summary": "peer", "model": args.model,
                               "ratios_extras_off": {r["size"]: r["ratio_extras_off"] for r in rows}}
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        area = (large["size"] / small["size"]) ** 2
        summary["memory_growth"] = {k: round(large["peak_mb"][k] / small["peak_mb"][k], 3)
                                    for k in large["peak_mb"]}
        summary["area_ratio"] = area
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
