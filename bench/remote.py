"""Object storage against local files: the cva pipeline reading and writing a local S3 server.

One run starts real S3 servers on 127.0.0.1 (``moto_server`` and SeaweedFS ``weed mini``,
through ``tests/objectstore.py``), uploads a synthetic pair as COGs to a bucket of each,
and times ``s2c-batch run --config cva`` (the untiled path) for:

- ``local``: local COGs in, a local folder out;
- ``<server>_in``: the same COGs from ``s3://`` in, a local folder out;
- ``<server>_in_out``: ``s3://`` in, ``--out s3://bucket/prefix`` out.

STAC, quicklook and polygons are off in every variant, so the figures compare the store
and COG path alone, as the first measurement did. Each run is its own process on its own
LocalCluster, with the credentials and ``AWS_ENDPOINT_URL`` in its environment only; the
variants alternate, in reverse order on every other rep (ABCCBA), and each output goes
to a fresh folder or prefix. Wall time and ratios are the best of ``--reps``; CPU
seconds are the run's process tree (not the server's, reported apart as
``server_cpu_s``); memory is the peak resident set of the run's process tree. After
every run its products are checked against the ``local`` run of the same rep: the Zarr
arrays equal, the COG pixels equal.

    python bench/remote.py --sizes 4096,8192 --reps 2
    python bench/remote.py --sizes 4096 --reps 1 --servers moto

Prints one JSON line per scene size and a table; writes every row to
``bench/out/remote/result.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from peer import CLI, measure, same_pixels, scene

OUT = Path(__file__).resolve().parent / "out" / "remote"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the servers the tests use

from objectstore import S3Server, moto_server, weed_server  # noqa: E402

BUCKET = "bench"
#: What is off in every variant: the derived products (the store and COG path alone).
OFF = ["output.stac=false", "output.quicklook=false", "output.polygons=false"]


def cog_pair(size: int) -> tuple[Path, Path]:
    """The synthetic pair of ``size`` px (``peer.scene``) as DEFLATE COGs with overviews (cached)."""
    import rasterio.shutil

    folder = OUT / f"scene-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    cogs = []
    for src in scene(size):
        dst = folder / src.name
        if not dst.exists():
            tmp = dst.with_suffix(".tmp.tif")
            rasterio.shutil.copy(src, tmp, driver="COG", compress="DEFLATE", blocksize=512, num_threads="ALL_CPUS")
            os.replace(tmp, dst)
        cogs.append(dst)
    return cogs[0], cogs[1]


@contextlib.contextmanager
def start_server(kind: str, workdir: Path) -> Iterator[tuple[S3Server, list[Any]]]:
    """A ``moto`` or ``weed`` server on 127.0.0.1 with a bucket; yields it and its processes."""
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    logs = workdir / f"{kind}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    data = workdir / f"{kind}-data"
    data.mkdir(parents=True, exist_ok=True)
    ctx = moto_server(logs) if kind == "moto" else weed_server(data, logs)
    with ctx as server:
        procs = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        server.client().create_bucket(Bucket=BUCKET)
        yield server, procs


def cpu_seconds(procs: list[Any]) -> float:
    """User + system seconds of the server's processes so far."""
    import psutil

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):  # a launcher that exec'd or exited
            t = p.cpu_times()
            total += t.user + t.system
    return total


def run_env(server: S3Server | None) -> dict[str, str]:
    """The environment of one ``s2c-batch run``: the server's credentials and endpoint, as aws_env sets them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"DASK_LOGGING__DISTRIBUTED": "critical", "AWS_EC2_METADATA_DISABLED": "true",
                "CPL_AWS_AUTODETECT_EC2": "NO"})
    if server is not None:
        env.update({**server.env(), "AWS_ENDPOINT_URL": server.endpoint})
    return env


def download(server: S3Server, prefix: str, dest: Path) -> None:
    """Every object under ``s3://BUCKET/prefix/`` into ``dest`` (the same layout as a local --out)."""
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, obj["Key"], str(target))


def delete_prefix(server: S3Server, prefix: str) -> None:
    """Remove every object under ``s3://BUCKET/prefix/`` (moto holds them in memory)."""
    client = server.client()
    keys = [{"Key": o["Key"]} for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/") for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):  # listed first: deleting while paging could skip keys
        client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys[i : i + 1000]})


def same_products(ref: Path, other: Path) -> bool:
    """Whether two output folders hold equal Zarr arrays and COGs of equal pixels."""
    import zarr

    a, b = zarr.open_group(ref / "change.zarr", mode="r"), zarr.open_group(other / "change.zarr", mode="r")
    names = sorted(a.array_keys())
    if not names or names != sorted(b.array_keys()):
        return False
    if any(not np.array_equal(a[name][...], b[name][...]) for name in names):
        return False
    cogs = sorted(p.name for p in ref.glob("*.tif"))
    if not cogs or cogs != sorted(p.name for p in other.glob("*.tif")):
        return False
    return all(same_pixels(ref / name, other / name) for name in cogs)


def variants(servers: dict[str, S3Server], local: tuple[Path, Path],
             remote: dict[str, tuple[str, str]]) -> dict[str, tuple[S3Server | None, tuple[str, str], bool]]:
    """``name -> (server, inputs, output on s3)``: local first, then each server's two."""
    out: dict[str, tuple[S3Server | None, tuple[str, str], bool]] = {"local": (None, (str(local[0]), str(local[1])),
                                                                                False)}
    for kind, server in servers.items():
        out[f"{kind}_in"] = (server, remote[kind], False)
        out[f"{kind}_in_out"] = (server, remote[kind], True)
    return out


def bench_size(size: int, reps: int, block: int, servers: dict[str, tuple[S3Server, list[Any]]],
               scratch: Path) -> dict[str, Any]:
    """Every variant ``reps`` times on one scene size, interleaved; the row of that size."""
    t1, t2 = cog_pair(size)
    remote = {}
    for kind, (server, _) in servers.items():
        for path in (t1, t2):
            server.client().upload_file(str(path), BUCKET, f"scenes-{size}/{path.name}")
        remote[kind] = (f"s3://{BUCKET}/scenes-{size}/{t1.name}", f"s3://{BUCKET}/scenes-{size}/{t2.name}")
    plan = variants({k: s for k, (s, _) in servers.items()}, (t1, t2), remote)
    config = ["--config", "cva", "--set", f"tiling.block_size={block}", "--set", "storage.allow_http=true",
              *(x for o in OFF for x in ("--set", o))]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in plan}
    agree: dict[str, bool] = {name: True for name in plan if name != "local"}
    loads = []
    for rep in range(reps):
        order = list(plan) if rep % 2 == 0 else list(reversed(plan))
        outs: dict[str, Path] = {}
        for name in order:
            server, (a, b), s3_out = plan[name]
            prefix = f"runs-{size}/{name}-r{rep}"
            out = f"s3://{BUCKET}/{prefix}" if s3_out else str(scratch / prefix)
            procs = servers[name.split("_")[0]][1] if server is not None else []
            (scratch / prefix).parent.mkdir(parents=True, exist_ok=True)
            loads.append(os.getloadavg()[0])
            cpu0 = cpu_seconds(procs)
            wall, cpu, peak = measure([*CLI, "run", a, b, "--out", out, *config, "--no-progress"], env=run_env(server))
            server_cpu = cpu_seconds(procs) - cpu0
            if s3_out:
                assert server is not None
                download(server, prefix, scratch / prefix)
                delete_prefix(server, prefix)
            outs[name] = scratch / prefix
            timings = json.loads((outs[name] / "run.json").read_text())["timings_s"]
            runs[name].append({"wall_s": wall, "cpu_s": cpu, "peak_mb": peak, "server_cpu_s": server_cpu,
                               "timings_s": timings})
        for name, folder in outs.items():
            if name != "local":
                agree[name] = agree[name] and same_products(outs["local"], folder)
        for folder in outs.values():
            shutil.rmtree(folder, ignore_errors=True)
    return summarise(size, reps, block, runs, agree, loads, (t1.stat().st_size + t2.stat().st_size) / 2**20)


def summarise(size: int, reps: int, block: int, runs: dict[str, list[dict[str, Any]]], agree: dict[str, bool],
              loads: list[float], input_mb: float) -> dict[str, Any]:
    """Best of the reps per variant, and its ratio to ``local`` (wall and CPU)."""
    mpx = size * size / 1e6
    best = {name: min(r, key=lambda x: x["wall_s"]) for name, r in runs.items()}
    base_wall = best["local"]["wall_s"]
    base_cpu = min(x["cpu_s"] for x in runs["local"])
    table = {}
    for name, row in best.items():
        cpu = min(x["cpu_s"] for x in runs[name])
        table[name] = {"wall_s": round(row["wall_s"], 2), "mpx_s": round(mpx / row["wall_s"], 2),
                       "ratio": round(row["wall_s"] / base_wall, 3), "cpu_s": round(cpu, 2),
                       "cpu_ratio": round(cpu / base_cpu, 3),
                       "server_cpu_s": round(row["server_cpu_s"], 2),
                       "peak_mb": round(max(x["peak_mb"] for x in runs[name])),
                       "walls_s": [round(x["wall_s"], 2) for x in runs[name]],
                       "timings_s": row["timings_s"]}
    return {"size": size, "reps": reps, "block_size": block, "megapixels": mpx, "input_mb": round(input_mb, 1),
            "variants": table,
            "products_agree": agree, "load_average": [round(min(loads), 2), round(max(loads), 2)],
            "cpus": os.cpu_count()}


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per size and variant: best wall, Mpx/s, ratios, CPU, memory, and run.json's stages.

    ``rest`` = wall time outside ``timings_s.total``: the process's start (imports), the
    lock's release and the cluster's close.
    """
    stages = ("open", "cluster_start", "create_store", "blocks", "cogs")
    print(f"{'size':>6} {'variant':<12} {'wall s':>6} {'Mpx/s':>5} {'ratio':>5} {'cpu s':>5} {'cpu r':>5} "
          f"{'srv s':>5} {'MB':>4} " + " ".join(f"{s[:7]:>7}" for s in (*stages, "rest")) + "  agree",
          file=sys.stderr)
    for row in rows:
        for name, v in row["variants"].items():
            t = v["timings_s"]
            cells = [t.get(s, 0.0) for s in stages] + [v["wall_s"] - t.get("total", 0.0)]
            print(f"{row['size']:>6} {name:<12} {v['wall_s']:>6.2f} {v['mpx_s']:>5.2f} {v['ratio']:>5.2f} "
                  f"{v['cpu_s']:>5.1f} {v['cpu_ratio']:>5.2f} {v['server_cpu_s']:>5.1f} {v['peak_mb']:>4} "
                  + " ".join(f"{c:>7.2f}" for c in cells) + f"  {row['products_agree'].get(name, '-')}",
                  file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="4096,8192")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--servers", default="moto,weed", help="moto, weed or both (comma-separated)")
    args = parser.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    if not kinds or any(k not in ("moto", "weed") for k in kinds):
        parser.error(f"--servers takes moto and/or weed, got {args.servers!r}")
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="s2c-bench-remote-", dir=OUT) as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        servers = {k: stack.enter_context(start_server(k, workdir)) for k in kinds}
        for size in [int(s) for s in args.sizes.split(",") if s]:
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            row = {"started": started, **bench_size(size, args.reps, args.block, servers, workdir / "runs")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (OUT / "result.json").write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=1))
    print_table(rows)


if __name__ == "__main__":
    main()
