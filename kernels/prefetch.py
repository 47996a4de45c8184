"""Run the next item's work in a background thread while the caller handles the current one.

A block task alternates between the model (on a GPU: the host mostly waits) and
host work on the model's output (blending tiles into float64 sums, choosing class
maps). Done one after the other, the GPU idles during the blend and the host idles
during the model. :func:`prefetched` overlaps them: ``fn(items[k + 1])`` runs in one
background thread while the caller consumes ``fn(items[k])``.

Only worth it when ``fn`` waits for another device. A CPU model already uses every
core, so callers enable it from the predictor's ``device_async``.

The background thread is one per process and lives as long as the process, so the
model is always called from the same thread: per-thread state such as the CUDA
graphs of ``torch.compile(mode="reduce-overhead")`` is built once, not once per block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Lock
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_pool_lock = Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """The process's prefetch thread (created on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2c-prefetch")
        return _pool


def prefetched(fn: Callable[[T], R], items: Sequence[T], *, enabled: bool = True) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` in order, computing one item ahead when enabled.

    With ``enabled``, ``fn(items[k + 1])`` is started in a background thread as soon
    as ``fn(items[k])`` has been handed to the caller, so the two overlap; at most
    two results exist at once. ``fn`` runs in order, one call at a time, in the
    process's one prefetch thread, so it may hold state (a model on a device); two
    callers at once share that thread and take turns. An exception raised by ``fn``
    is raised to the caller when it would have received that item's result, and
    nothing later is started.

    Args:
        fn: the work per item (e.g. stack a batch of tiles and run the model).
        items: the items, in order.
        enabled: False runs ``fn`` in the caller's thread, item by item. True runs it
            in the prefetch thread even for a single item (the model keeps one thread).

    Yields:
        ``(item, fn(item))`` for every item, in order.

    Example:
        >>> [r for _, r in prefetched(lambda x: x * x, [1, 2, 3])]
        [1, 4, 9]
    """
    if not enabled or not items:
        for item in items:
            yield item, fn(item)
        return
    pool = _shared_pool()
    pending: Future[R] = pool.submit(fn, items[0])
    try:
        for k, item in enumerate(items):
            result = pending.result()
            if k + 1 < len(items):
                pending = pool.submit(fn, items[k + 1])
            yield item, result
    finally:
        # The caller stopped early (an error while handling an item): wait for the work
        # in flight, so that nothing of this call runs after it has returned.
        if not pending.cancel():
            pending.exception()  # blocks until done; an error there concerns no one any more
