"""A run never hangs: every block task has a deadline, and a task past it is retried on a fresh worker.

A block task that stops making progress (a benchmark once saw a Zarr shard write
sleep for ten minutes with all of its worker's threads waiting; issue 19) would
otherwise hold the run until Dask noticed a dead worker, if ever. The
:class:`Watchdog` is checked by :func:`~s2c_batch.pipeline.cluster.supervise.collect_blocks`
between completions, about every second. It follows the run's own tasks from
the moment the scheduler gives them to a worker, and gives each a deadline from
the run's own times:

    deadline = max(cluster.stall_min_s, cluster.stall_factor x median seconds of
                   the finished tasks of its kind: read, tiles, piece, write)

A task past its deadline is a stall, put on what its worker is executing (as the
worker last reported with its heartbeat): the task itself, or the one it is
queued behind, which may not be this run's (a task of a stopped run still
stuck in a thread). The watchdog then, at once:

1. logs one line naming the block, the task, the worker and the seconds;
2. logs the worker's thread stacks when the worker can still answer (its event
   loop may be blocked too; then it says so);
3. restarts the worker through its nanny (``Client.restart_workers``), or, for a
   worker without a nanny, removes it from the scheduler: either way Dask runs
   the task again elsewhere;
4. records the stall in ``run.json`` (``stalls``: block, task, worker, seconds,
   deadline, action, outcome), and the outcome once the block is written.

A block that stalls more than ``cluster.retries`` times fails the run with a
:class:`~s2c_batch.pipeline.errors.ClusterError` (exit 1); the written blocks are
kept and ``--resume`` continues.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from s2c_batch.pipeline.errors import ClusterError

log = logging.getLogger(__name__)

#: Seconds to wait for a stalled worker's thread stacks.
STACKS_TIMEOUT_S = 10.0
#: Seconds a worker restart may take.
RESTART_TIMEOUT_S = 60.0
#: Finished tasks of a kind before their median counts.
MIN_SAMPLES = 3


@dataclass
class Stall:
    """One task past its deadline (an entry of ``run.json``'s ``stalls``)."""

    block: tuple[int, int] | None  # None: a task not of this run held the worker
    task: str
    worker: str
    seconds: float
    deadline_s: float
    action: str = ""
    outcome: str = "retrying"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record."""
        d = asdict(self)
        d["block"] = None if self.block is None else list(self.block)
        return d


def task_kind(key: str) -> str:
    """``read``, ``tiles``, ``piece`` or ``write`` of a block task key ``s2c-<kind>-<token>-...``."""
    return key.split("-")[1]


def task_block(key: str) -> tuple[int, int]:
    """The block a task belongs to: the last two numbers of its key (a piece's destination)."""
    parts = key.split("-")
    return int(parts[-2]), int(parts[-1])


def thread_stacks() -> str:
    """Every thread's stack in this process, named (run on a worker by the watchdog)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"Thread {names.get(ident, ident)} ({ident}):\n{''.join(traceback.format_stack(frame))}")
    return "\n".join(out)


@dataclass
class Watchdog:
    """Deadlines for one run's block tasks (see the module docstring).

    Args:
        client: the run's ``distributed.Client``.
        token: the run's key token: its tasks are ``s2c-<kind>-<token>-...``.
        factor: ``cluster.stall_factor``.
        min_s: ``cluster.stall_min_s``, the least deadline.
        retries: ``cluster.retries``: stalls of one block before the run fails.
        on_change: called with every stall record whenever one changes (``run.json``).
    """

    client: Any
    token: str
    factor: float
    min_s: float
    retries: int
    on_change: Callable[[list[dict[str, Any]]], None] = lambda stalls: None
    clock: Callable[[], float] = time.monotonic
    stalls: list[Stall] = field(default_factory=list)
    _since: dict[tuple[str, str], float] = field(default_factory=dict)
    _durations: dict[str, list[float]] = field(default_factory=dict)
    _coarse: bool = False

    @property
    def poll_s(self) -> float:
        """How often to check: often enough to catch a stall within a twentieth of the least deadline."""
        return min(1.0, max(0.1, self.min_s / 20))

    def deadline(self, kind: str) -> float:
        """Seconds a task of ``kind`` may run: the floor, or ``factor`` times its kind's median."""
        done = self._durations.get(kind, [])
        if len(done) < MIN_SAMPLES:
            return self.min_s
        return max(self.min_s, self.factor * statistics.median(done))

    def check(self) -> None:
        """Look at the run's tasks on the workers; act on the oldest one past its deadline.

        A task's time counts from when the scheduler gave it to a worker, so a task
        queued behind a stuck one (of this run or not) passes its deadline too; the
        stall is then put on what the worker is executing.

        Raises:
            ClusterError: a block stalled more than ``retries`` times.
        """
        now = self.clock()
        assigned = {
            (key, worker)
            for worker, keys in self.client.processing().items()
            for key in keys
            if isinstance(key, str) and key.startswith("s2c-") and f"-{self.token}-" in key
        }
        for key, worker in set(self._since) - assigned:  # finished (or failed, or moved)
            started = self._since.pop((key, worker))
            self._durations.setdefault(task_kind(key), []).append(now - started)
        for task in assigned:
            self._since.setdefault(task, now)
        for (key, worker), started in sorted(self._since.items(), key=lambda item: item[1]):
            deadline = self.deadline(task_kind(key))
            if now - started > deadline:
                culprit, seconds = self._culprit(worker, key, now - started)
                self._stalled(culprit, worker, seconds, deadline)
                return  # the worker's tasks moved: look again at the next check

    def _culprit(self, worker: str, waiting: str, waited: float) -> tuple[str, float]:
        """The task ``worker`` has been executing longest, and for how long (else the waiting task).

        Workers report what they execute with every heartbeat (about every second); a
        worker whose event loop is blocked stops reporting, and its last report still
        names the stuck task.
        """
        if not self._coarse:

            def executing(dask_scheduler: Any) -> dict[str, float]:  # runs on the scheduler
                ws = dask_scheduler.workers.get(worker)
                if ws is None:
                    return {}
                since_report = max(0.0, time.time() - ws.last_seen)
                return {str(ts.key): float(d) + since_report for ts, d in ws.executing.items()}

            try:
                running = self.client.run_on_scheduler(executing)
            except (OSError, TimeoutError):
                raise  # a lost scheduler: reported by the run
            except Exception as exc:  # e.g. distributed.scheduler.pickle: false
                log.warning("watchdog: the scheduler does not run our query (%s); a stall is put on the "
                            "longest-waiting task of the run", exc)
                self._coarse = True
            else:
                if running:
                    key = max(running, key=running.__getitem__)
                    return key, running[key]
        return waiting, waited

    def block_written(self, index: tuple[int, int]) -> None:
        """Mark the stalls of a block that is now written."""
        changed = False
        for stall in self.stalls:
            if stall.block == index and stall.outcome == "retrying":
                stall.outcome = "written after retry"
                changed = True
        if changed:
            self.on_change([s.to_dict() for s in self.stalls])

    def _stalled(self, key: str, worker: str, seconds: float, deadline: float) -> None:
        ours = key.startswith("s2c-") and f"-{self.token}-" in key
        block = task_block(key) if ours else None
        stall = Stall(block=block, task=key, worker=worker, seconds=round(seconds, 1),
                      deadline_s=round(deadline, 1))
        self.stalls.append(stall)
        count = sum(s.block == block for s in self.stalls) if ours else 0
        if ours:
            log.warning("stall: block %s task %s has run %.0f s on worker %s, past its deadline of %.0f s "
                        "(stall %d of this block; %d retries allowed)", block, key, seconds, worker, deadline,
                        count, self.retries)
        else:
            log.warning("stall: worker %s has run task %s (not of this run) for %.0f s while this run's tasks "
                        "wait past their deadline of %.0f s", worker, key, seconds, deadline)
        self._log_stacks(worker)
        stall.action = self._restart(worker)  # also when the run stops: no stuck thread stays behind
        if count > self.retries:
            for each in self.stalls:
                if each.block == block:
                    each.outcome = "failed"
            self.on_change([s.to_dict() for s in self.stalls])
            raise ClusterError(
                f"block {block} stalled {count} times: task {key} ran past its deadline of {deadline:.0f} s "
                f"on {', '.join(s.worker for s in self.stalls if s.block == block)} (see 'stalls' in run.json "
                "and the stacks in the log); the written blocks are kept: run again with --resume "
                "(cluster.stall_min_s and cluster.stall_factor set the deadline)"
            )
        if not ours:
            stall.outcome = "worker freed"
        self.on_change([s.to_dict() for s in self.stalls])

    def _log_stacks(self, worker: str) -> None:
        answer: dict[str, str] = {}

        def ask() -> None:
            try:
                answer.update(self.client.run(thread_stacks, workers=[worker]))
            except Exception as exc:  # a worker that cannot answer is what a stall may look like
                answer[worker] = f"(no stacks: {type(exc).__name__}: {exc})"

        asker = threading.Thread(target=ask, name="s2c-watchdog-stacks", daemon=True)
        asker.start()
        asker.join(STACKS_TIMEOUT_S)
        stacks = answer.get(worker, f"(no answer within {STACKS_TIMEOUT_S:.0f} s: its event loop is blocked too)")
        log.warning("stall: thread stacks of worker %s:\n%s", worker, stacks)

    def _restart(self, worker: str) -> str:
        """Restart the worker through its nanny, else remove it from the scheduler; returns what was done.

        Every task's clock starts afresh afterwards: tasks elsewhere waited for the data
        of the restarted worker, and its own tasks start again on other workers.
        """
        try:
            return self._restart_or_remove(worker)
        finally:
            self._since.clear()

    def _restart_or_remove(self, worker: str) -> str:
        try:
            status = self.client.restart_workers([worker], timeout=RESTART_TIMEOUT_S, raise_for_error=False)
            if status.get(worker) == "OK":
                log.warning("stall: restarted worker %s; its tasks run again", worker)
                return "worker restarted"
        except Exception as exc:  # no nanny, or the nanny is gone too
            log.debug("restarting %s failed: %s", worker, exc)

        async def remove(dask_scheduler: Any) -> None:
            await dask_scheduler.remove_worker(worker, stimulus_id=f"s2c-stall-{time.time()}", close=True)

        try:
            self.client.run_on_scheduler(remove)
        except (OSError, TimeoutError):
            raise  # a lost scheduler: reported by the run
        except Exception as exc:
            log.warning("stall: worker %s could be neither restarted nor removed (%s)", worker, exc)
            return "none possible"
        log.warning("stall: removed worker %s (it has no nanny to restart it); its tasks run elsewhere", worker)
        return "worker removed"
