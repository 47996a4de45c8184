"""Connect to the user's Dask cluster, or start (and close) a LocalCluster.

Without ``--scheduler``: one worker process per visible GPU (each with
``resources={"GPU": 1}`` and two threads: GPU tasks take the GPU resource, so
the second thread reads and writes blocks meanwhile), else CPU workers. A run whose
comparator needs no torch model (``numpy_only``) neither imports torch to look for GPUs
nor leaves cores idle: one single-threaded worker per core. The dashboard link is logged
at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from distributed import Client, LocalCluster

from s2c_batch.pipeline.config import ClusterConfig
from s2c_batch.pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def visible_gpus() -> int:
    """GPUs torch can see (0 without torch or CUDA); does not initialise CUDA."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return int(torch.cuda.device_count())


@contextlib.contextmanager
def connect(scheduler: str | None, cfg: ClusterConfig, *, needs_gpu_check: bool = True,
            numpy_only: bool = False) -> Iterator[Client]:
    """Yield a client of the given scheduler, or of a LocalCluster closed on exit.

    Args:
        scheduler: ``tcp://host:port`` of a running scheduler, or ``None``.
        cfg: the ``cluster`` config section (LocalCluster sizing, retries).
        needs_gpu_check: look for GPUs when sizing a LocalCluster.
        numpy_only: the work runs no torch model (untiled comparators): no GPU check,
            and one worker per core unless ``cluster.n_workers`` says otherwise.

    Raises:
        ConfigError: the scheduler cannot be reached (exit 2: fix the address).
    """
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at --scheduler {scheduler!r} ({exc}); "
                "start one with `dask scheduler` or fix the address"
            ) from exc
        log.info("dashboard: %s", client.dashboard_link)
        try:
            yield client
        finally:
            client.close()
        return

    gpus = visible_gpus() if needs_gpu_check and not numpy_only else 0
    kwargs: dict[str, Any]
    if numpy_only:
        kwargs = {"n_workers": cfg.n_workers or max(1, os.cpu_count() or 1),
                  "threads_per_worker": cfg.threads_per_worker}
    elif gpus:
        n = cfg.n_workers or gpus
        # Two threads: one runs the GPU task, the other reads the next block and writes.
        kwargs = {"n_workers": n, "threads_per_worker": 2, "resources": {"GPU": 1}}
    else:
        n = cfg.n_workers or max(1, min(2, os.cpu_count() or 1))
        kwargs = {"n_workers": n, "threads_per_worker": cfg.threads_per_worker}
    cluster = LocalCluster(
        processes=True, memory_limit=cfg.memory_limit, dashboard_address="127.0.0.1:0",
        host="127.0.0.1", silence_logs=logging.ERROR, **kwargs,
    )
    client = Client(cluster)
    log.info("dashboard: %s", client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def has_gpu_workers(client: Client) -> bool:
    """True when any worker of the cluster advertises a ``GPU`` resource."""
    info = client.scheduler_info(n_workers=-1)
    return any("GPU" in (w.get("resources") or {}) for w in info.get("workers", {}).values())


def torch_threads_per_worker(client: Client) -> int:
    """CPU threads torch may use in each worker of a local cluster."""
    info = client.scheduler_info(n_workers=-1)
    n = max(1, len(info.get("workers", {})))
    return max(1, (os.cpu_count() or 1) // n)
