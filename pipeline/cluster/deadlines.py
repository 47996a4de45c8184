"""When a block task counts as stuck: no progress for its deadline, measured from the work itself.

The workers report what their tasks have done (:mod:`~s2c_batch.pipeline.cluster.progress`):
steps finished (a batch of tiles, a date read, a product written), the seconds since
the last one, and the median seconds per step of each kind on that worker. A task is
stalled when it has gone longer than its deadline **without a step**, however long it
has run:

    deadline = cluster.stall_min_s                  before its worker has finished a step
                                                    of its kind (the first batch: loading
                                                    the model, a first call on a GPU)
    deadline = max(least, cluster.stall_factor x    afterwards
                   the median step of its kind on that worker)
    least    = min(cluster.stall_idle_min_s, cluster.stall_min_s)

So the first tasks of a run get deadlines from their own work as soon as one step is
done, a task of a hundred tile batches is never stopped for its length, and a frozen
worker, a read that hangs or a write whose threads all sleep is caught one deadline
after its last step. A worker that stops heartbeating (frozen, or its event loop
blocked) keeps its last report, which ages: its idle time grows by the report's age.

:func:`judge` applies the rule to one worker's report; the
:class:`~s2c_batch.pipeline.cluster.watchdog.Watchdog` acts on what it finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from s2c_batch.pipeline.cluster.progress import task_label

#: A worker's report older than this is said to be (it heartbeats about every second).
STALE_REPORT_S = 5.0


@dataclass(frozen=True)
class Rule:
    """The deadline settings (the ``cluster`` config section).

    Attributes:
        min_s: ``cluster.stall_min_s``: the deadline before a step of the kind is measured.
        factor: ``cluster.stall_factor``: the deadline in medians of the kind's steps.
        idle_min_s: ``cluster.stall_idle_min_s``: the least deadline once a step is measured
            (never above ``min_s``).
    """

    min_s: float
    factor: float
    idle_min_s: float

    @property
    def least_s(self) -> float:
        """The least deadline once steps are measured."""
        return min(self.idle_min_s, self.min_s)

    def deadline(self, kind: Mapping[str, Any] | None) -> tuple[float, str]:
        """Seconds a task may go without a step, and how they were chosen.

        Args:
            kind: the worker's measure of the task's kind (``{"steps": n, "step_s": median}``),
                or ``None`` before it has one.

        Example:
            >>> Rule(min_s=300, factor=10, idle_min_s=30).deadline({"steps": 4, "step_s": 4.5})
            (45.0, '10 x 4.5 s, the median step of its kind on this worker')
            >>> Rule(min_s=300, factor=10, idle_min_s=30).deadline({"steps": 4, "step_s": 0.25})
            (30.0, 'the least deadline (10 x 0.25 s, the median step of its kind on this worker, is shorter)')
            >>> Rule(min_s=300, factor=10, idle_min_s=30).deadline(None)[0]
            300.0
        """
        if kind is None or not kind.get("steps"):
            return float(self.min_s), "cluster.stall_min_s: no step of its kind measured on this worker yet"
        step_s = float(kind["step_s"])
        measured = f"{self.factor:g} x {step_s:.3g} s, the median step of its kind on this worker"
        if self.factor * step_s >= self.least_s:
            return self.factor * step_s, measured
        return float(self.least_s), f"the least deadline ({measured}, is shorter)"


@dataclass(frozen=True)
class Verdict:
    """One task found stuck on a worker (or a task of the run waiting on a worker that does nothing).

    Attributes:
        task: the key of the task holding the worker.
        worker: the worker's address.
        seconds: how long the task has run (or waited).
        idle_s: how long without a step.
        deadline_s: its deadline.
        progress: what it had done: ``steps``, ``done`` of ``total`` in ``unit``, and, once
            measured, ``step_s`` (the median step) and ``expected_s`` (the whole task at that pace).
        reason: why it counts as stuck, in words (``run.json`` and the log).
        reporting: the task itself reports progress and is stuck (not a task waiting for its worker).
    """

    task: str
    worker: str
    seconds: float
    idle_s: float
    deadline_s: float
    progress: dict[str, Any]
    reason: str
    reporting: bool = True

    @property
    def overdue_s(self) -> float:
        """Seconds past the deadline."""
        return self.idle_s - self.deadline_s


@dataclass(frozen=True)
class Judgement:
    """What one worker's report says: the stuck task, if any, and whether others still progress."""

    stuck: Verdict | None
    progressing: tuple[str, ...] = ()


def judge(worker: str, report: Mapping[str, Any], age_s: float, rule: Rule, *,
          waiting: Iterable[tuple[str, float]] = ()) -> Judgement:
    """Apply the rule to one worker's last report.

    Args:
        worker: the worker's address.
        report: its last progress report (:mod:`~s2c_batch.pipeline.cluster.progress`).
        age_s: seconds since the report was made (a frozen worker's report only ages).
        rule: the deadline settings.
        waiting: ``(key, seconds)`` of the run's tasks the scheduler gave this worker that
            it does not execute (queued behind others, or fetching their inputs).

    Returns:
        The task most overdue among those past their deadline (block tasks, ``s2c-...``),
        and the block tasks still within theirs. When nothing the worker executes reports
        progress, a task of the run that has waited longer than ``stall_min_s`` is stuck
        too, put on the task the worker has executed longest (else on itself).
    """
    stale = f"; the worker's last report is {age_s:.0f} s old" if age_s > STALE_REPORT_S else ""
    stuck: list[Verdict] = []
    progressing: list[str] = []
    tasks: Mapping[str, Mapping[str, Any]] = report.get("tasks", {})
    for key, task in tasks.items():
        label = task_label(key)
        if label is None:
            continue  # not a block task: it reports nothing to judge it by
        kind = report.get("kinds", {}).get(label)
        deadline, basis = rule.deadline(kind)
        idle = float(task["idle_s"]) + age_s
        if idle <= deadline:
            progressing.append(key)
            continue
        progress = _progress(task, kind)
        since = (f"since its last step ({_done(task)})" if task["steps"] else "since it started")
        stuck.append(Verdict(task=key, worker=worker, seconds=float(task["running_s"]) + age_s, idle_s=idle,
                             deadline_s=deadline, progress=progress,
                             reason=f"no progress for {idle:.0f} s {since}; deadline {deadline:.0f} s = "
                                    f"{basis}{stale}"))
    if stuck:
        return Judgement(max(stuck, key=lambda v: v.overdue_s), tuple(progressing))
    if progressing:
        return Judgement(None, tuple(progressing))
    late = [(key, seconds + age_s) for key, seconds in waiting if seconds + age_s > rule.min_s]
    if not late:
        return Judgement(None)
    key, seconds = max(late, key=lambda item: item[1])
    culprit, ran = key, seconds
    if tasks:  # something that reports no progress holds the worker
        culprit = max(tasks, key=lambda k: float(tasks[k]["running_s"]))
        ran = float(tasks[culprit]["running_s"]) + age_s
    return Judgement(Verdict(
        task=culprit, worker=worker, seconds=ran, idle_s=seconds, deadline_s=float(rule.min_s), progress={},
        reason=f"task {key} has waited {seconds:.0f} s for a worker that executes nothing reporting progress; "
               f"deadline {rule.min_s:.0f} s = cluster.stall_min_s{stale}", reporting=False))


def unreported(worker: str, waiting: Iterable[tuple[str, float]], rule: Rule) -> Verdict | None:
    """A task of the run on a worker without progress reports, once it has waited past ``stall_min_s``."""
    late = [(key, seconds) for key, seconds in waiting if seconds > rule.min_s]
    if not late:
        return None
    key, seconds = max(late, key=lambda item: item[1])
    return Verdict(task=key, worker=worker, seconds=seconds, idle_s=seconds, deadline_s=float(rule.min_s),
                   progress={}, reason=f"its worker sends no progress reports; it has been on the worker "
                                       f"{seconds:.0f} s, past cluster.stall_min_s", reporting=False)


def _done(task: Mapping[str, Any]) -> str:
    return f"{task['done']} of {task['total']} {task['unit']}" if task.get("unit") else f"{task['steps']} steps"


def _progress(task: Mapping[str, Any], kind: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record of what a task had done (``run.json``'s ``stalls[].progress``)."""
    out: dict[str, Any] = {"steps": int(task["steps"]), "done": int(task["done"]), "total": int(task["total"]),
                           "unit": str(task["unit"])}
    if kind is not None and kind.get("steps"):
        step_s = float(kind["step_s"])
        out["step_s"] = round(step_s, 2)
        if task["done"] and task["total"]:  # its steps in all, at the pace it has kept
            out["expected_s"] = round(step_s * task["steps"] * task["total"] / task["done"], 1)
    return out
