"""Fixtures shared by the whole suite: a real Dask cluster and shared-data paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testutils import SHARED, RealCluster, free_port  # noqa: E402

# Quiet the scheduler and worker logs that distributed prints at INFO.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A real scheduler and two worker processes, shared by the tests of one session."""
    log_dir = tmp_path_factory.mktemp("dask-logs")
    port = free_port()
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", "127.0.0.1:0", "--no-show"],
        stdout=open(log_dir / "scheduler.log", "ab"), stderr=subprocess.STDOUT,
    )
    cluster = RealCluster(f"tcp://127.0.0.1:{port}", sched, [], log_dir)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        for i in range(2):
            cluster.start_worker(f"test-worker-{i}")
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        for proc in [*cluster.workers, sched]:
            proc.terminate()
        for proc in [*cluster.workers, sched]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def shared_data() -> Path:
    """The real imagery in ../shared/data; skips when this checkout has none beside it."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real imagery not available: {data} is absent (it sits beside the repository)")
    return data
