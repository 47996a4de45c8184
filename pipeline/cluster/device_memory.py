"""A CUDA out-of-memory error in a block task: retry the batch smaller, and restart a worker that cannot recover.

A GPU worker that runs out of device memory (a larger model, a neighbour on a shared GPU,
fragmentation after hours of blocks) raises ``torch.OutOfMemoryError`` in the middle of a
block. Retrying the whole task as it was would fail the same way, and a worker whose
allocator or CUDA context is in a bad state keeps failing every block it is given. So:

1. the block's tiles are predicted again with half the batch, down to one tile pair, after
   the allocator's cached blocks are released (``torch.cuda.empty_cache``);
2. the batch that fitted is remembered by the worker process (:func:`batch_limit`), so its
   later blocks start there instead of failing once each;
3. a block that runs out of memory even one pair at a time means the worker is unusable:
   it is closed, its nanny starts a fresh process (a new CUDA context), and the task fails
   with :class:`DeviceMemoryExhausted`, an unexpected error that the run retries
   (``cluster.retries``); Dask reruns it on a fresh worker. A worker without a nanny is
   removed instead, and its tasks run elsewhere.

The sums of a block do not depend on the batch size (float64, each tile once), so a block
predicted after a retry is the block predicted without one.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between a worker deciding it is unusable and closing (its task's error goes out first).
CLOSE_DELAY_S = 0.5

_limits: dict[str, int] = {}


class DeviceMemoryExhausted(RuntimeError):
    """A block ran out of device memory even one tile pair at a time; its worker is being restarted.

    Not an :class:`~s2c_batch.pipeline.errors.S2CError`: the run retries it, on a fresh worker.
    """


def is_device_oom(exc: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error, without importing torch."""
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError == torch.cuda.OutOfMemoryError
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("CUDA out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text
                                              or "CUDNN_STATUS_ALLOC_FAILED" in text)


def batch_limit(key: str) -> int | None:
    """The largest batch that fitted for ``key`` in this process after an out-of-memory error (or ``None``)."""
    return _limits.get(key)


def batch_limits() -> dict[str, int]:
    """Every batch limit of this process (what a test or an operator asks a worker)."""
    return dict(_limits)


def release_device_memory() -> None:
    """Drop unreachable tensors and return the allocator's cached blocks to the device."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def smaller_batches_on_oom(run: Callable[[int], T], batch_size: int, *, key: str,
                           what: str = "block") -> T:
    """``run(batch)`` with the configured batch, halved after each out-of-memory error.

    Args:
        run: the work with a given batch size (it must start afresh on every call).
        batch_size: the configured batch (``model.batch_size``).
        key: what the limit is remembered under (the model's plugin name).
        what: names the work in the log.

    Raises:
        DeviceMemoryExhausted: out of memory at a batch of one; this worker is being restarted.
    """
    size = min(batch_size, _limits.get(key, batch_size))
    while True:
        try:
            return run(size)
        except Exception as exc:
            if not is_device_oom(exc):
                raise
        # Out of the handler: the traceback, and the failed batch's tensors its frames held, are gone.
        release_device_memory()
        if size <= 1:
            action = restart_this_worker("device out of memory at a batch of one tile pair")
            raise DeviceMemoryExhausted(
                f"{what}: out of device memory even one tile pair at a time; {action}, and the block runs "
                "again (lower model.batch_size, or give the worker a GPU of its own)"
            )
        size = max(1, size // 2)
        _limits[key] = size
        log.warning("%s: out of device memory; predicting again with batch %d (this worker keeps it)", what, size)


def restart_this_worker(reason: str) -> str:
    """Close this Dask worker soon, so that its nanny starts a fresh process; returns what was done.

    Outside a worker (the synchronous scheduler) nothing is restarted.
    """
    try:
        from distributed import get_worker

        worker: Any = get_worker()
    except (ImportError, ValueError):
        return "no worker to restart"
    nanny = getattr(worker, "nanny", None)
    log.warning("worker %s: %s; closing it so that %s", worker.address, reason,
                "its nanny starts a fresh process" if nanny else "its tasks run elsewhere (it has no nanny)")

    def close() -> None:
        worker.loop.add_callback(worker.close, nanny=False, executor_wait=False, reason=f"s2c: {reason}")

    worker.loop.call_later(CLOSE_DELAY_S, close)
    return "its worker is restarted" if nanny else "its worker is closed (no nanny to restart it)"
