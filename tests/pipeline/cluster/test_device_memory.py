"""A CUDA out-of-memory error in a block task: the batch is retried smaller, a worker that cannot recover restarts.

On the CPU, through the test-only ``tests/oomhook.py`` (preloaded by the workers): its
predictor raises ``torch.OutOfMemoryError`` above a batch size, or for every batch size a
given number of times. A real scheduler and one nanny-managed worker; the tiny CACH model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from s2c_batch.pipeline.cluster.device_memory import (
    DeviceMemoryExhausted,
    is_device_oom,
    smaller_batches_on_oom,
)
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import run_change_detection
from s2c_batch.pipeline.run.worker import plugin_name

from oomhook import OOM_ENV, OOM_HOOK
from testutils import SMALL, RealCluster, make_pair, read_band

TINY_CACH = [*SMALL, "model.identifier=none", "model.batch_size=4"]


def test_is_device_oom__torch_and_cuda_messages_only() -> None:
    import torch

    assert is_device_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_device_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"))
    assert not is_device_oom(RuntimeError("shape mismatch")) and not is_device_oom(MemoryError())


def test_smaller_batches__halves_until_it_fits_and_remembers() -> None:
    import torch

    tried = []

    def run(batch: int) -> int:
        tried.append(batch)
        if batch > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return batch

    assert smaller_batches_on_oom(run, 16, key="unit-a") == 2 and tried == [16, 8, 4, 2]
    tried.clear()
    assert smaller_batches_on_oom(run, 16, key="unit-a") == 2 and tried == [2]  # starts where it fitted


def test_smaller_batches__other_errors_pass_through_and_one_pair_that_fails_gives_up() -> None:
    import torch

    with pytest.raises(ValueError, match="bad"):
        smaller_batches_on_oom(lambda b: (_ for _ in ()).throw(ValueError("bad")), 8, key="unit-b")

    def never(batch: int) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(DeviceMemoryExhausted, match="even one tile pair"):
        smaller_batches_on_oom(never, 4, key="unit-c")


@pytest.fixture(scope="module")
def oom_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealCluster, Path, tuple[Path, Path]]]:
    """One nanny-managed worker with the OOM hook, the hook's file, and a 4-block scene."""
    root = tmp_path_factory.mktemp("oom")
    hook = root / "oom"
    hook.write_text("99 0")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(OOM_ENV, str(hook))
        cluster = RealCluster.start(root, 1, prefix="oom", nanny=True, preload=OOM_HOOK)
    try:
        yield cluster, hook, make_pair(root, 200, 200, seed=4)
    finally:
        cluster.stop()


def _set_hook(hook: Path, most: int, poison: int) -> None:
    for claimed in hook.parent.glob(f"{hook.name}.p*"):
        claimed.unlink()
    hook.write_text(f"{most} {poison}")


def _run(scene: tuple[Path, Path], out: Path, address: str, *extra: str) -> dict[str, np.ndarray]:
    cfg = load_config("tiny", [*TINY_CACH, *extra])
    run_change_detection(*scene, out, cfg, scheduler=address, progress=False)
    return {name: read_band(out / f"{name}.tif") for name in ("change_prob", "change_mask")}


@pytest.fixture(scope="module")
def clean_batch2(oom_cluster: tuple[RealCluster, Path, tuple[Path, Path]],
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The scene's products predicted two pairs at a time, without any out-of-memory error."""
    cluster, hook, scene = oom_cluster
    _set_hook(hook, 99, 0)
    return _run(scene, tmp_path_factory.mktemp("clean") / "out", cluster.address, "model.batch_size=2")


@pytest.mark.cluster
def test_oom__a_batch_too_large_is_retried_smaller_and_the_worker_keeps_the_size(
        oom_cluster: tuple[RealCluster, Path, tuple[Path, Path]], clean_batch2: dict[str, np.ndarray],
        tmp_path: Path) -> None:
    cluster, hook, scene = oom_cluster
    _set_hook(hook, 2, 0)  # a GPU that holds two pairs at a time; the config asks for four
    got = _run(scene, tmp_path / "oom", cluster.address)
    for name in clean_batch2:
        assert np.array_equal(got[name], clean_batch2[name]), name
    from distributed import Client

    from s2c_batch.pipeline.cluster.device_memory import batch_limits

    with Client(cluster.address) as client:
        (limits,) = client.run(batch_limits).values()
    assert limits[plugin_name(load_config("tiny", TINY_CACH).model)] == 2


@pytest.mark.cluster
def test_oom__a_worker_out_of_memory_at_one_pair_is_restarted_and_the_block_runs_again(
        oom_cluster: tuple[RealCluster, Path, tuple[Path, Path]], clean_batch2: dict[str, np.ndarray],
        tmp_path: Path) -> None:
    cluster, hook, scene = oom_cluster
    from distributed import Client

    with Client(cluster.address) as client:
        (pid_before,) = client.run(os.getpid).values()
    _set_hook(hook, 99, 2)  # batch 2, then 1: every size fails; the worker must go
    got = _run(scene, tmp_path / "restarted", cluster.address, "model.batch_size=2")
    for name in clean_batch2:
        assert np.array_equal(got[name], clean_batch2[name]), name
    with Client(cluster.address) as client:
        client.wait_for_workers(1, timeout=60)
        (pid_after,) = client.run(os.getpid).values()
    assert pid_after != pid_before, "the worker was not restarted"
    assert len(list(hook.parent.glob(f"{hook.name}.p*"))) == 2
