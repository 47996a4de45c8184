"""The LocalCluster that ``connect`` starts: its workers' memory limits."""

from __future__ import annotations

import pytest
from distributed.system import MEMORY_LIMIT

from s2c_batch.pipeline.cluster.connect import connect, local_memory_limit
from s2c_batch.pipeline.config import ClusterConfig


@pytest.mark.parametrize(("setting", "n", "expected"), [
    ("auto", 1, 24 * 2**30), ("AUTO", 2, 12 * 2**30), ("auto", 3, 8 * 2**30),
    ("8GiB", 2, "8GiB"), ("0", 4, "0"),
])
def test_local_memory_limit__auto_splits_among_workers_else_passes_on(
        setting: str, n: int, expected: str | int) -> None:
    assert local_memory_limit(setting, n, system_bytes=24 * 2**30) == expected


@pytest.mark.parametrize("n_workers", [1, 2])
def test_connect__auto_gives_single_threaded_workers_the_machine_split_evenly(n_workers: int) -> None:
    # Dask's own auto would give each 1-thread worker memory x 1 / cores (half of a 2-core
    # machine), and its nanny would silently replace a large model's worker at 95 % of that.
    cfg = ClusterConfig(n_workers=n_workers, threads_per_worker=1)
    with connect(None, cfg, needs_gpu_check=False) as client:
        limits = [w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    assert limits == [MEMORY_LIMIT // n_workers] * n_workers


def test_connect__an_explicit_limit_is_dasks() -> None:
    cfg = ClusterConfig(n_workers=1, memory_limit="1GiB")
    with connect(None, cfg, needs_gpu_check=False) as client:
        limits = [w["memory_limit"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    assert limits == [2**30]
