"""A run never hangs: a block task that stops making progress is retried on a fresh worker.

A block task that stops making progress (a benchmark once saw a Zarr shard write
sleep for ten minutes with all of its worker's threads waiting; issue 19) would
otherwise hold the run until Dask noticed a dead worker, if ever. A task that is
slow but working must finish, however long it takes. The :class:`Watchdog` is
checked by :func:`~s2c_batch.pipeline.cluster.supervise.collect_blocks` between
completions, about every second. The workers report the steps their block tasks
finish (:mod:`~s2c_batch.pipeline.cluster.progress`, through Dask's heartbeats), and
a task is stalled when it has made **no progress for its deadline**
(:mod:`~s2c_batch.pipeline.cluster.deadlines`): ``cluster.stall_min_s`` until its
worker has measured a step of its kind, then ``cluster.stall_factor`` times the
median step there (at least ``cluster.stall_idle_min_s``).

A stall is put on what its worker is executing: the task itself, or, when a task of
the run waits on a worker that executes nothing reporting progress, the task holding
that worker (which may not be this run's: a task of a stopped run still stuck in a
thread). The watchdog then, at once:

1. asks the worker for its thread stacks and its progress as of now (its event loop
   may be blocked too; then it says so); a task that has made a step since is left
   alone: a restart is never spent on progress;
2. logs one line naming the block, the task, the worker, its progress and why it
   counts as stuck, then the stacks;
3. restarts the worker through its nanny (``Client.restart_workers``), or, for a
   worker without a nanny, removes it from the scheduler: either way Dask runs
   the task again elsewhere; while another block task on that worker still makes
   progress, the restart waits for it;
4. records the stall in ``run.json`` (``stalls``: block, task, worker, seconds,
   seconds without progress, deadline, the progress made, the reason, action,
   outcome), and the outcome once the block is written.

A block that stalls more than ``cluster.retries`` times fails the run with a
:class:`~s2c_batch.pipeline.errors.ClusterError` (exit 1); the written blocks are
kept and ``--resume`` continues.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from s2c_batch.pipeline.cluster.deadlines import Rule, Verdict, judge, unreported
from s2c_batch.pipeline.cluster.progress import METRIC, probe
from s2c_batch.pipeline.errors import ClusterError

log = logging.getLogger(__name__)

#: Seconds to wait for a stalled worker's thread stacks and progress.
STACKS_TIMEOUT_S = 10.0
#: Seconds a worker restart may take.
RESTART_TIMEOUT_S = 60.0


@dataclass
class Stall:
    """One task that made no progress for its deadline (an entry of ``run.json``'s ``stalls``)."""

    block: tuple[int, int] | None  # None: a task not of this run held the worker
    task: str
    worker: str
    seconds: float
    deadline_s: float
    idle_s: float = 0.0
    progress: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
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


def stacks_and_progress(dask_worker: Any) -> tuple[str, dict[str, Any] | None]:
    """A worker's thread stacks and its progress as of now (run on the worker by the watchdog)."""
    return thread_stacks(), probe(dask_worker)


@dataclass
class Watchdog:
    """Deadlines from progress for one run's block tasks (see the module docstring).

    Args:
        client: the run's ``distributed.Client``.
        token: the run's key token: its tasks are ``s2c-<kind>-<token>-...``.
        factor: ``cluster.stall_factor``.
        min_s: ``cluster.stall_min_s``: the deadline before a step of a kind is measured.
        retries: ``cluster.retries``: stalls of one block before the run fails.
        idle_min_s: ``cluster.stall_idle_min_s``: the least deadline once steps are measured.
        reported: the workers have the progress plugin (:func:`~s2c_batch.pipeline.cluster.progress.install`).
            A worker without a report is then starting (its plugins load the model before its
            first heartbeat) and is not judged until it reports; without the plugin, the run's
            tasks on a worker are stalled once there longer than ``min_s``.
        on_change: called with every stall record whenever one changes (``run.json``).
        clock: monotonic seconds.
        wall: this machine's clock (seconds since the epoch), to date the workers' reports.
    """

    client: Any
    token: str
    factor: float
    min_s: float
    retries: int
    idle_min_s: float = 30.0
    reported: bool = True
    on_change: Callable[[list[dict[str, Any]]], None] = lambda stalls: None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    stalls: list[Stall] = field(default_factory=list)
    _since: dict[tuple[str, str], float] = field(default_factory=dict)
    _beats: dict[str, tuple[int, float]] = field(default_factory=dict)
    _offsets: dict[str, float] = field(default_factory=dict)
    _deferred: set[tuple[str, str]] = field(default_factory=set)

    @property
    def rule(self) -> Rule:
        """The deadline settings."""
        return Rule(min_s=self.min_s, factor=self.factor, idle_min_s=self.idle_min_s)

    @property
    def poll_s(self) -> float:
        """How often to check: often enough to catch a stall within a twentieth of the least deadline."""
        return min(1.0, max(0.1, self.rule.least_s / 20))

    def check(self) -> None:
        """Look at what the workers holding the run's tasks report; act on the most overdue stuck task.

        Raises:
            ClusterError: a block stalled more than ``retries`` times.
        """
        assigned = {
            (key, worker)
            for worker, keys in self.client.processing().items()
            for key in keys
            if isinstance(key, str) and key.startswith("s2c-") and f"-{self.token}-" in key
        }
        now = self.clock()
        for gone in set(self._since) - assigned:  # finished (or failed, or moved)
            del self._since[gone]
        for task in assigned:
            self._since.setdefault(task, now)
        if not assigned:
            return
        reports = self._reports({worker for _, worker in assigned})
        now = self.clock()  # a loaded scheduler may take seconds to answer
        found: list[Verdict] = []
        for worker in sorted({worker for _, worker in assigned}):
            ours = [(key, now - self._since[(key, w)]) for key, w in assigned if w == worker]
            if worker not in reports:  # starting (no heartbeat before its plugins are set up), or no plugin
                verdict = None if self.reported else unreported(worker, ours, self.rule)
                if verdict is not None:
                    found.append(verdict)
                continue
            report, age = reports[worker]
            executing = set(report.get("tasks", {}))
            judgement = judge(worker, report, age, self.rule,
                              waiting=[(key, s) for key, s in ours if key not in executing])
            if judgement.stuck is None:
                continue
            if judgement.progressing:
                self._defer(judgement.stuck, judgement.progressing)
                continue
            found.append(judgement.stuck)
        if found:
            self._confirm_and_act(max(found, key=lambda v: v.overdue_s))

    def _reports(self, workers: set[str]) -> dict[str, tuple[dict[str, Any], float]]:
        """Each worker's last progress report and its age in seconds (workers without one are left out).

        The age is the larger of two measures. Since this watchdog first saw the report (on
        its own clock: never more than the true age). And the worker's clock when it made
        the report against this machine's, less the smallest such difference seen from that
        worker (the clocks' offset plus the quickest delivery), which stays right when the
        watchdog could not look for a while (a loaded machine, a restart it waited for).
        """
        info = self.client.scheduler_info(n_workers=-1).get("workers", {})
        now, wall = self.clock(), self.wall()
        for gone in set(self._beats) - set(info):
            del self._beats[gone]
            self._offsets.pop(gone, None)
        out = {}
        for worker in workers:
            report = (info.get(worker, {}).get("metrics") or {}).get(METRIC)
            if not isinstance(report, dict):
                continue
            seq = int(report.get("seq", 0))
            if self._beats.get(worker, (None, 0.0))[0] != seq:
                self._beats[worker] = (seq, now)
            offset = wall - float(report.get("at", wall))
            self._offsets[worker] = min(offset, self._offsets.get(worker, offset))
            out[worker] = (report, max(now - self._beats[worker][1], offset - self._offsets[worker]))
        return out

    def _defer(self, stuck: Verdict, progressing: tuple[str, ...]) -> None:
        """A stuck task shares its worker with tasks still progressing: restart it once they are done."""
        if (stuck.task, stuck.worker) in self._deferred:
            return
        self._deferred.add((stuck.task, stuck.worker))
        log.warning("stall: task %s on worker %s is stuck (%s); the worker is restarted once %s, still "
                    "progressing, %s done", stuck.task, stuck.worker, stuck.reason, ", ".join(progressing),
                    "is" if len(progressing) == 1 else "are")

    def _confirm_and_act(self, verdict: Verdict) -> None:
        """Ask the worker once more; restart it unless the task has made progress meanwhile."""
        stacks, now = self._ask(verdict.worker)
        if now is not None and verdict.reporting:
            task = now.get("tasks", {}).get(verdict.task)
            if task is None or int(task["steps"]) > int(verdict.progress.get("steps", 0)) \
                    or float(task["idle_s"]) <= verdict.deadline_s:
                log.info("watchdog: task %s on worker %s made progress meanwhile (%s); not restarted",
                         verdict.task, verdict.worker, "finished" if task is None else f"{task['steps']} steps")
                return
        self._stalled(verdict, stacks)

    def block_written(self, index: tuple[int, int]) -> None:
        """Mark the stalls of a block that is now written."""
        changed = False
        for stall in self.stalls:
            if stall.block == index and stall.outcome == "retrying":
                stall.outcome = "written after retry"
                changed = True
        if changed:
            self.on_change([s.to_dict() for s in self.stalls])

    def _stalled(self, verdict: Verdict, stacks: str) -> None:
        key, worker = verdict.task, verdict.worker
        ours = key.startswith("s2c-") and f"-{self.token}-" in key
        block = task_block(key) if ours else None
        stall = Stall(block=block, task=key, worker=worker, seconds=round(verdict.seconds, 1),
                      deadline_s=round(verdict.deadline_s, 1), idle_s=round(verdict.idle_s, 1),
                      progress=dict(verdict.progress), reason=verdict.reason)
        self.stalls.append(stall)
        count = sum(s.block == block for s in self.stalls) if ours else 0
        if ours:
            log.warning("stall: block %s task %s has run %.0f s on worker %s: %s (stall %d of this block; "
                        "%d retries allowed)", block, key, verdict.seconds, worker, verdict.reason, count,
                        self.retries)
        else:
            log.warning("stall: worker %s holds task %s (not of this run) while this run's tasks wait: %s",
                        worker, key, verdict.reason)
        log.warning("stall: thread stacks of worker %s:\n%s", worker, stacks)
        stall.action = self._restart(worker)  # also when the run stops: no stuck thread stays behind
        if count > self.retries:
            for each in self.stalls:
                if each.block == block:
                    each.outcome = "failed"
            self.on_change([s.to_dict() for s in self.stalls])
            raise ClusterError(
                f"block {block} stalled {count} times: task {key} ran past its deadline of "
                f"{verdict.deadline_s:.0f} s on {', '.join(s.worker for s in self.stalls if s.block == block)} "
                "without progress (see 'stalls' in run.json and the stacks in the log); the written blocks are "
                "kept: run again with --resume (cluster.stall_min_s, cluster.stall_factor and "
                "cluster.stall_idle_min_s set the deadline)"
            )
        if not ours:
            stall.outcome = "worker freed"
        self.on_change([s.to_dict() for s in self.stalls])

    def _ask(self, worker: str) -> tuple[str, dict[str, Any] | None]:
        """The worker's thread stacks and progress as of now; no progress when it cannot answer."""
        answer: dict[str, Any] = {}

        def ask() -> None:
            try:
                answer.update(self.client.run(stacks_and_progress, workers=[worker]))
            except Exception as exc:  # a worker that cannot answer is what a stall may look like
                answer[worker] = (f"(no stacks: {type(exc).__name__}: {exc})", None)

        asker = threading.Thread(target=ask, name="s2c-watchdog-stacks", daemon=True)
        asker.start()
        asker.join(STACKS_TIMEOUT_S)
        stacks, now = answer.get(
            worker, (f"(no answer within {STACKS_TIMEOUT_S:.0f} s: its event loop is blocked too)", None))
        return str(stacks), now

    def _restart(self, worker: str) -> str:
        """Restart the worker through its nanny, else remove it from the scheduler; returns what was done.

        Every task's clock starts afresh afterwards: tasks elsewhere waited for the data
        of the restarted worker, and its own tasks start again on other workers.
        """
        try:
            return self._restart_or_remove(worker)
        finally:
            self._since.clear()
            self._deferred.clear()

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
