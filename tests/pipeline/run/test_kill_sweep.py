"""Heavy: ``kill -9`` of a whole run at many moments, then ``--resume``: always the clean run's products.

Run with ``python -m pytest -m heavy tests/pipeline/run/test_kill_sweep.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.output import layout
from s2c_batch.pipeline.output.ledger import BlockLedger
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import assert_same_products, make_pair

SMALL = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128"]
KILLS = 16


def _cli(t1: Path, t2: Path, out: Path, scheduler: str) -> subprocess.Popen[bytes]:
    sets = sum((["--set", s] for s in SMALL), [])
    return subprocess.Popen(
        [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", "run", str(t1), str(t2),
         "--out", str(out), "--config", "cva", "--scheduler", scheduler, "--no-progress", *sets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _state(out: Path) -> str:
    """What the killed run left, in the words of the recovery cases."""
    run = json.loads((out / layout.RUN_JSON).read_text()) if (out / layout.RUN_JSON).exists() else None
    if run is None:
        return "no run.json"
    if run["status"] == "complete":
        return "complete"
    if not (out / layout.STORE).exists():
        return "run.json, no store"
    blocks = len(BlockLedger(out).done())
    if blocks == 0:
        return "store, no block"
    if blocks < 144:
        return "some blocks"
    return "blocks, products pending"


@pytest.mark.heavy
@pytest.mark.cluster
def test_run__sigkill_at_many_moments_then_resume_equals_a_clean_run(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    scene = make_pair(tmp_path, 1536, 1536, seed=11, nodata=0)  # 144 blocks
    clean = tmp_path / "clean" / "out"
    run_change_detection(*scene, clean, load_config("cva", SMALL), scheduler=dask_cluster.address, progress=False)
    t0 = time.perf_counter()
    assert _cli(*scene, tmp_path / "timed" / "out", dask_cluster.address).wait(timeout=300) == 0
    whole = time.perf_counter() - t0
    states: dict[str, int] = {}
    for i in range(KILLS):
        out = tmp_path / f"kill{i}" / "out"
        proc = _cli(*scene, out, dask_cluster.address)
        time.sleep(0.3 + (whole - 0.3) * i / KILLS)  # from start-up to the last products
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        state = _state(out) if out.exists() else "nothing"
        states[state] = states.get(state, 0) + 1
        res = run_change_detection(*scene, out, load_config("cva", SMALL), scheduler=dask_cluster.address,
                                   resume=True, progress=False)
        assert res.status == "complete", state
        assert_same_products(out, clean)
    print(f"\n{KILLS} kills over a {whole:.1f} s run left: {states}")
    assert len(states) >= 4, f"the kills hit too few stages: {states}"
