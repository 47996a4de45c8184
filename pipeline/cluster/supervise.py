"""Wait for a run's block tasks: record each written block, retry what may pass, stop on what cannot.

Dask's own ``retries`` rerun a task after *any* exception: a damaged file's
as much as a flaky network's. Block tasks are therefore submitted without
them, and :func:`collect_blocks` decides as each task ends:

- written: the block is recorded (``on_done``) at once;
- an :class:`~s2c_batch.pipeline.errors.S2CError` (a damaged input, a full
  disk): deterministic, so raised at once and never retried;
- ``KilledWorker``: the scheduler already moved the block to new workers
  (``distributed.scheduler.allowed-failures`` times) and each died:
  a :class:`~s2c_batch.pipeline.errors.ClusterError`;
- anything else: retried up to ``cluster.retries`` times (the scheduler reruns
  the failed tasks and what depends on them), then raised;
- running past its deadline: the :class:`~s2c_batch.pipeline.cluster.watchdog.Watchdog`
  restarts its worker so that Dask runs it again.

A lost scheduler cancels every future; :func:`reporting_lost_cluster` turns
that, wherever in the run it happens, into one :class:`ClusterError` line
naming the scheduler, the blocks kept and ``--resume``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from typing import Any, Protocol, TypeVar

from distributed import Future, KilledWorker, as_completed
from distributed.comm import CommClosedError

from s2c_batch.pipeline.cluster.watchdog import Watchdog
from s2c_batch.pipeline.errors import ClusterError, S2CError

log = logging.getLogger(__name__)


class BlockResult(Protocol):
    """What a block task returns: at least the index of its block."""

    @property
    def index(self) -> tuple[int, int]:
        """The block."""


#: A block task's result (:class:`~s2c_batch.pipeline.run.worker.BlockReport` in a run).
R = TypeVar("R", bound=BlockResult)

#: Seconds between looks for finished block tasks when none has finished.
TICK_S = 0.05


def collect_blocks(client: Any, futures: Sequence[Future], *, retries: int,
                   on_done: Callable[[R], None], watchdog: Watchdog | None = None) -> list[R]:
    """Wait for every write task; returns their reports in completion order.

    Args:
        client: the run's ``distributed.Client``.
        futures: one write task per block.
        retries: reruns of a block whose task failed with an unexpected error.
        on_done: called with each block's report as soon as it is written.
        watchdog: checked between completions: restarts the worker of a task past its deadline.

    Raises:
        S2CError: a block task's deterministic error (input 3, output 4), unchanged.
        ClusterError: a block killed every worker it ran on, or stalled past its retries.
        Exception: a block task's unexpected error once its retries are spent.
    """
    tries: dict[Any, int] = {}
    reports: list[R] = []
    # The client's own loop: as_completed otherwise takes the default client's, which in a
    # batch's run threads may be another client, whose loop never sees these futures end.
    done = as_completed(futures, loop=client.loop)
    next_check = time.monotonic()
    while not done.is_empty():
        batch = done.next_batch(block=False)
        if not batch:
            time.sleep(TICK_S)
        for fut in batch:
            if fut.status == "finished":
                report: R = fut.result()
                on_done(report)
                if watchdog is not None:
                    watchdog.block_written(report.index)
                reports.append(report)
            elif _retried(client, fut, tries, retries):
                done.add(fut)
        if watchdog is not None and time.monotonic() >= next_check and not done.is_empty():
            watchdog.check()
            next_check = time.monotonic() + watchdog.poll_s
    return reports


def _retried(client: Any, fut: Future, tries: dict[Any, int], retries: int) -> bool:
    """Retry a failed block task when its error may pass; raise it when not."""
    if fut.status != "error":  # cancelled: the scheduler is gone (reporting_lost_cluster)
        fut.result()
    exc = fut.exception()
    if isinstance(exc, KilledWorker):
        raise ClusterError(
            f"a block task ({fut.key}) was running on every worker that died under it ({exc}); "
            "check the workers' logs (out of memory?), then run again with --resume"
        ) from exc
    if isinstance(exc, S2CError) or tries.get(fut.key, 0) >= retries:
        fut.result()  # raises it with the worker's traceback
    tries[fut.key] = tries.get(fut.key, 0) + 1
    log.warning("block task %s failed (%s: %s); retry %d of %d", fut.key, type(exc).__name__, exc,
                tries[fut.key], retries)
    _retry(client, fut)
    return True


def _retry(client: Any, fut: Future) -> None:
    """Rerun a failed task and its failed dependencies, like ``Client.retry``.

    ``Client.retry`` (distributed 2026.8) resets the client's state of every key the
    scheduler retried and fails with ``KeyError`` on a dependency the client holds no
    future of, which is every block's read and tile task.
    """
    keys = client.sync(client.scheduler.retry, keys=[fut.key], client=client.id)
    for key in keys:
        state = client.futures.get(key)
        if state is not None:
            state.retry()


def cancel_quietly(client: Any, futures: Sequence[Future]) -> None:
    """Cancel tasks of a failed run; nothing to do when the scheduler is gone."""
    if client.status != "running":  # asking a lost scheduler would wait for its timeout
        return
    try:
        client.cancel(futures)
    except (OSError, TimeoutError, CommClosedError):
        log.debug("cancelling the block tasks failed", exc_info=True)


@contextlib.contextmanager
def reporting_lost_cluster(client: Any, *, kept: Callable[[], int], total: int) -> Iterator[None]:
    """Turn a lost scheduler, anywhere inside the block, into one :class:`ClusterError`.

    Args:
        client: the run's client.
        kept: how many blocks are written and recorded (asked when the loss happens).
        total: the run's blocks.
    """
    try:
        yield
    except S2CError:
        raise
    except (CancelledError, CommClosedError, OSError, TimeoutError) as exc:
        if not isinstance(exc, CancelledError) and client.status == "running":
            raise  # an error of the task or of this machine, not of the cluster
        address = getattr(client.scheduler, "address", None) or "(unknown)"
        raise ClusterError(
            f"lost the Dask scheduler at {address}: {kept()} of {total} blocks are written and kept; "
            "once a scheduler runs there (or with another --scheduler), run again with --resume to continue"
        ) from exc
