"""Heavy: thousands of Zarr block writes the way workers make them, watching for the stall of issue 19.

A benchmark once saw a block write sleep for ten minutes (the task thread in
``store.write_block`` -> zarr ``sync``; zarr's ``zarr_io`` loop thread submitting
Zstd encodes; the worker's main thread in distributed's GC callback). This test
repeats that setting: a LocalCluster like the benchmark's (two worker processes
under nannies, one task thread each, distributed's GC diagnostics on, as in every
worker), the allocator settings of model workers
(:func:`~s2c_batch.pipeline.cluster.allocator.reuse_freed_memory`), 2048-pixel blocks
of two products in 512-pixel Zstd chunks, and cyclic garbage made in every task
with low GC thresholds, so full collections run often while zarr's threads encode.
Every write arms ``faulthandler.dump_traceback_later``: a write that stalls
leaves every thread's stack in a file, which the test prints.

The stalled stacks had zarr's loop thread starting a new encode thread
(``ThreadPoolExecutor.submit -> _adjust_thread_count``), which a long-lived
worker does only in its first few writes. So by default every write here starts
from a fresh encode pool on zarr's loop (``S2C_STRESS_FRESH_POOL=0``: keep one),
and each write goes through that window.

Budget: ``S2C_STRESS_WRITES`` block writes (default 3000) or ``S2C_STRESS_SECONDS``
seconds (default 900), whichever ends first. Run with
``python -m pytest -m heavy -s tests/pipeline/run/test_write_stress.py``.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from distributed import Client, LocalCluster, as_completed
from rasterio.crs import CRS
from zarr.core.sync import _get_loop as zarr_loop

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.cluster.allocator import reuse_freed_memory
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import test modules

BLOCK = 2048
#: A write taking longer than this is a stall: every thread's stack goes to the dump file.
STALL_S = 120.0


def _worker_setup() -> bool:
    """On each worker: the model workers' allocator settings and frequent full collections."""
    gc.set_threshold(200, 5, 5)
    return reuse_freed_memory()


def _write(path: str, window: Window, seed: int, dump: str, fresh_pool: bool) -> float:
    """One block write as a worker makes it, with garbage to collect; returns its seconds."""
    rng = np.random.default_rng(seed)
    smooth = np.add.outer(np.arange(window.height), np.arange(window.width)) % 254
    prob = (smooth + rng.integers(0, 8, smooth.shape)).clip(0, 254).astype(np.uint8)
    arrays = {"change_prob": prob, "change_mask": (prob >= 127).astype(np.uint8)}
    cycles = []
    for i in range(2000):  # reference cycles: only the cyclic collector frees them
        a: list[object] = [i]
        a.append(a)
        cycles.append(a)
    del cycles
    if fresh_pool:  # zarr's loop thread then starts new encode threads during this write
        zarr_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
    with open(dump, "a") as f:
        faulthandler.dump_traceback_later(STALL_S, exit=False, file=f)
        try:
            t0 = time.perf_counter()
            store.write_block(path, window, arrays)
            return time.perf_counter() - t0
        finally:
            faulthandler.cancel_dump_traceback_later()


@pytest.mark.heavy
def test_store_write_block__thousands_of_writes_under_gc_pressure_never_stall(tmp_path: Path) -> None:
    writes = int(os.environ.get("S2C_STRESS_WRITES", "3000"))
    budget_s = float(os.environ.get("S2C_STRESS_SECONDS", "900"))
    fresh_pool = os.environ.get("S2C_STRESS_FRESH_POOL", "1") == "1"
    grid = Grid(CRS.from_epsg(32631).to_wkt(), (0.5, 0, 500000, 0, -0.5, 5000000), 2 * BLOCK, 2 * BLOCK)
    path = tmp_path / "change.zarr"
    store.create_store(path, grid, ["change_prob", "change_mask"], shard=BLOCK, chunk=512, attrs={})
    windows = [Window(r, c, BLOCK, BLOCK) for r in (0, BLOCK) for c in (0, BLOCK)]
    dump = tmp_path / "stacks.txt"
    dump.touch()
    seconds: list[float] = []
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        assert all(client.run(_worker_setup).values()) or sys.platform != "linux"
        submitted = 0

        def submit() -> object:
            nonlocal submitted
            submitted += 1
            return client.submit(_write, str(path), windows[submitted % 4], submitted, str(dump), fresh_pool,
                                 pure=False)

        running = as_completed([submit() for _ in range(8)])
        for fut in running:
            seconds.append(fut.result())
            if submitted < writes and time.perf_counter() - t0 < budget_s:
                running.add(submit())
    took = time.perf_counter() - t0
    stacks = dump.read_text()
    print(f"\n{len(seconds)} block writes ({BLOCK} px, 2 products, fresh encode pool: {fresh_pool}) in "
          f"{took:.0f} s: median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s; "
          f"stall dumps: {'yes' if stacks else 'none'}")
    assert not stacks, f"a block write stalled for {STALL_S:.0f} s; every thread's stack:\n{stacks}"
    assert max(seconds) < STALL_S
