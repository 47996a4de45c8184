"""Connect to the user's Dask cluster, or start (and close) a LocalCluster.

Without ``--scheduler``: one worker process per visible GPU (each with
``resources={"GPU": 1}`` and two threads: GPU tasks take the GPU resource, so
the second thread reads and writes blocks meanwhile), else CPU workers. A run whose
comparator needs no torch model (``numpy_only``) neither imports torch to look for GPUs
nor leaves cores idle: one single-threaded worker per core. ``cluster.memory_limit: auto``
shares the machine's memory among the worker processes started, not among its cores
(Dask's own ``auto``): one single-threaded model worker on a 2-core machine may use all
of it, not half. The dashboard link is logged at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from distributed import Client, LocalCluster
from distributed.system import MEMORY_LIMIT

from s2c_batch.pipeline.config import ClusterConfig
from s2c_batch.pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def local_memory_limit(setting: str, n_workers: int, *, system_bytes: int = MEMORY_LIMIT) -> str | int:
    """The memory limit of each LocalCluster worker for ``cluster.memory_limit``.

    Dask's ``auto`` gives a worker the machine's memory times its threads over the
    machine's cores, so a single-threaded worker holding a large model gets half of a
    2-core machine however few workers run, and its nanny replaces it at 95 % of that,
    silently, restarting its task from zero. Here ``auto`` is the machine's memory
    (cgroup limits included, as Dask reads it) split evenly among the worker processes.

    Args:
        setting: ``cluster.memory_limit``: ``"auto"``, or what Dask accepts
            (``"8GiB"``, a byte count, ``"0"`` for no limit); passed on unchanged.
        n_workers: worker processes the LocalCluster starts (>= 1).
        system_bytes: the machine's memory in bytes.

    Returns:
        Bytes per worker for ``auto``, else ``setting``.
    """
    if str(setting).strip().lower() != "auto":
        return setting
    return max(1, system_bytes // max(1, n_workers))


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
        processes=True, memory_limit=local_memory_limit(cfg.memory_limit, kwargs["n_workers"]),
        dashboard_address="127.0.0.1:0",
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
