"""Block tasks report their progress to the watchdog through Dask's worker heartbeats.

A block task counts its steps as it goes (a batch of tiles predicted, a date read,
a product written) with :func:`task_progress`. The counts stay in the worker process,
in the :class:`ProgressPlugin` every worker gets (``Client.register_plugin``;
:func:`install`), which adds one entry to the worker's *metrics*
(``Worker.metrics``): Dask evaluates it in the worker's event loop for every
heartbeat (about every second) and the scheduler keeps the latest, so
``Client.scheduler_info()`` hands every worker's last report to the
:class:`~s2c_batch.pipeline.cluster.watchdog.Watchdog`. No channel of our own: a worker
that is frozen (``SIGSTOP``), or whose event loop is blocked, stops heartbeating, and
its last report ages where the watchdog can see it.

A report (:data:`METRIC` in the worker's metrics) is plain data::

    {"seq": 41,                               # one more with every report
     "at": 1796640000.25,                     # the worker's clock (time.time()) when made
     "tasks": {key: {"running_s": 12.5,      # every task the worker executes
                     "idle_s": 0.8,          # since its last step (tiles: or layer; before any: its start)
                     "steps": 7, "done": 28, "total": 121, "unit": "tiles predicted"}},
     "kinds": {"s2c-tiles-1a2b3c4d": {"steps": 30, "step_s": 2.4}}}   # this worker's median step

A task that reports nothing (not ours, or not started reporting yet) has ``steps`` 0
and ``idle_s`` equal to ``running_s``. ``kinds`` holds the seconds per step this
worker measured for the kinds it executes now (the key without its block numbers:
one run's tiles, reads or writes), from its most recent :data:`STEP_SAMPLES` steps.

A step of the model can take minutes: the full-size SAM 3 on a CPU spends them in one
batch, and a batch on a machine whose load jumps can take ten times its median. A
tiles task therefore also counts each call of a torch module that finishes (a
transformer layer, a decoder pass) as a sign of progress, all through the task
(:meth:`TaskProgress.model_calls`): ``idle_s`` is then the time since the last step or
module call, whichever is later. The steps alone set the deadline (``kinds``). A
first call that spends minutes inside one operation (compiling, autotuning on a GPU)
is what ``cluster.stall_min_s`` covers; a tiles task stuck inside one operation, or
outside the model, calls no module and is caught.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distributed import WorkerPlugin, get_worker

log = logging.getLogger(__name__)

#: The plugin's name on every worker, and the key of its report in the worker's metrics.
METRIC = "s2c-progress"
#: Steps of a kind kept per worker for its median: the recent ones, so that it follows the
#: machine's load.
STEP_SAMPLES = 16
#: Kinds whose steps a worker remembers (the least recently used is forgotten first).
MAX_KINDS = 32


def task_label(key: str) -> str | None:
    """The kind of a block task key ``s2c-<kind>-<token>-<numbers>``: ``s2c-<kind>-<token>`` (``None``: not ours)."""
    parts = key.split("-")
    if parts[0] != "s2c" or len(parts) < 4:
        return None
    return "-".join(parts[:3])


@dataclass
class _Task:
    """One executing task's counts (monotonic seconds of the worker)."""

    kind: str | None
    unit: str
    last: float
    steps: int = 0
    done: int = 0
    total: int = 0
    last_call: float = 0.0  # the last module call that finished (model_calls)


@dataclass
class _Kind:
    """A kind's recent step durations on this worker."""

    seconds: deque[float] = field(default_factory=lambda: deque(maxlen=STEP_SAMPLES))
    steps: int = 0


class ProgressPlugin(WorkerPlugin):
    """Holds the step counts of the tasks a worker executes; adds them to its heartbeats."""

    name = METRIC
    idempotent = True  # registered by every run: a worker keeps the counts it has

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}
        self._kinds: OrderedDict[str, _Kind] = OrderedDict()
        self._seq = 0

    def __reduce__(self) -> tuple[type[ProgressPlugin], tuple[()]]:
        return (ProgressPlugin, ())  # sent to the workers empty: the lock and the counts are per process

    def setup(self, worker: Any) -> None:
        """Add the report to the worker's heartbeat metrics."""
        worker.metrics[METRIC] = self.report

    def teardown(self, worker: Any) -> None:
        """Take the report out of the worker's metrics."""
        worker.metrics.pop(METRIC, None)

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        """Forget a task's counts once it stops executing (finished, failed or cancelled)."""
        if start == "executing":
            with self._lock:
                self._tasks.pop(str(key), None)

    def begin(self, key: str, unit: str) -> None:
        """A task starts reporting (from its own thread, when it starts)."""
        now = time.monotonic()
        with self._lock:
            self._tasks[key] = _Task(kind=task_label(key), unit=unit, last=now)

    def step(self, key: str, done: int, total: int, unit: str | None = None) -> None:
        """A task finished one step of its work: ``done`` of ``total`` units now."""
        now = time.monotonic()
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                return
            if task.kind is not None:
                kind = self._kinds.setdefault(task.kind, _Kind())
                self._kinds.move_to_end(task.kind)
                kind.seconds.append(now - task.last)
                kind.steps += 1
                while len(self._kinds) > MAX_KINDS:
                    self._kinds.popitem(last=False)
            task.last, task.steps, task.done, task.total = now, task.steps + 1, done, total
            if unit is not None:
                task.unit = unit

    def model_call(self, key: str) -> None:
        """A torch module called by the task finished (no lock: one float, written whole)."""
        task = self._tasks.get(key)
        if task is not None:
            task.last_call = time.monotonic()

    def report(self, worker: Any) -> dict[str, Any]:
        """The heartbeat's report (see the module docstring); numbered, one more each time."""
        self._seq += 1
        return self.view(worker)

    def view(self, worker: Any) -> dict[str, Any]:
        """What the worker's tasks have done, as of now."""
        now, wall = time.monotonic(), time.time()
        running = {str(key): max(0.0, wall - float(worker.state.tasks[key].start_time or wall))
                   for key in list(worker.active_keys) if key in worker.state.tasks}
        tasks: dict[str, dict[str, Any]] = {}
        kinds: dict[str, dict[str, Any]] = {}
        with self._lock:
            for key, seconds in running.items():
                task = self._tasks.get(key)
                entry: dict[str, Any] = {"running_s": seconds, "idle_s": seconds, "steps": 0, "done": 0,
                                         "total": 0, "unit": ""}
                label = task_label(key)
                kind = self._kinds.get(label) if label is not None else None
                measured = kind is not None and kind.steps > 0
                if task is not None:
                    entry.update(idle_s=now - max(task.last, task.last_call), steps=task.steps, done=task.done,
                                 total=task.total, unit=task.unit)
                tasks[key] = entry
                if label is not None and kind is not None and measured:
                    kinds[label] = {"steps": kind.steps, "step_s": statistics.median(kind.seconds)}
        return {"seq": self._seq, "at": wall, "tasks": tasks, "kinds": kinds}


def probe(dask_worker: Any) -> dict[str, Any] | None:
    """This worker's report as of now, asked directly (``Client.run``); ``None`` without the plugin."""
    plugin = dask_worker.plugins.get(METRIC)
    return plugin.view(dask_worker) if isinstance(plugin, ProgressPlugin) else None


class TaskProgress:
    """What a block task tells the watchdog of its work (:func:`task_progress`)."""

    def __init__(self, plugin: ProgressPlugin | None = None, key: str = "") -> None:
        self._plugin = plugin
        self._key = key

    def step(self, done: int, total: int, unit: str | None = None) -> None:
        """One step of the task is finished: ``done`` of ``total`` units now (in ``unit``, else the task's).

        Safe from any thread; does nothing outside a worker with the plugin.
        """
        if self._plugin is not None:
            self._plugin.step(self._key, done, total, unit)

    def model_call(self) -> None:
        """A torch module the task called has finished (see :meth:`model_calls`)."""
        if self._plugin is not None:
            self._plugin.model_call(self._key)

    @contextlib.contextmanager
    def model_calls(self, *, enabled: bool = True) -> Iterator[None]:
        """Count every torch module call that finishes as progress, while inside the block.

        A global forward hook of torch, there while any task of the process counts (it
        notes the time of each call; its cost: docs/performance.md, "The watchdog"). Not
        with ``enabled`` false
        (compiled models: the hook would be traced into them), nor outside a worker with
        the plugin, nor in a process that has not imported torch.
        """
        if not enabled or self._plugin is None or "torch" not in sys.modules:
            yield
            return
        _start_counting(self)
        try:
            yield
        finally:
            _stop_counting(self)


#: Tasks counting module calls, by the thread that runs them; and torch's hook while any does.
_counting: dict[int, TaskProgress] = {}
_counting_lock = threading.Lock()
_hook: Any = None


def _module_done(module: Any, args: Any, output: Any) -> None:
    """Torch's global forward hook: a module call finished, in this thread or the prefetch thread."""
    counting = _counting
    task = counting.get(threading.get_ident())
    if task is not None:
        task.model_call()
    else:  # the model runs in the prefetch thread (kernels/prefetch.py) for the task that asked
        for each in list(counting.values()):
            each.model_call()


def _start_counting(task: TaskProgress) -> None:
    global _hook
    import torch

    with _counting_lock:
        _counting[threading.get_ident()] = task
        if _hook is None:
            _hook = torch.nn.modules.module.register_module_forward_hook(_module_done)


def _stop_counting(task: TaskProgress) -> None:
    global _hook
    if not _counting:
        return
    with _counting_lock:
        for ident in [i for i, t in _counting.items() if t is task]:
            del _counting[ident]
        if not _counting and _hook is not None:
            _hook.remove()
            _hook = None


def task_progress(unit: str) -> TaskProgress:
    """The progress of the block task running in this thread, counted in ``unit`` (e.g. ``tiles predicted``).

    Call it in the task's own thread, when the task starts; its steps may then come from
    any thread. Outside a Dask worker, or on a worker without the :class:`ProgressPlugin`
    (the synchronous scheduler of tests), the steps go nowhere.
    """
    try:
        worker = get_worker()
    except ValueError:
        return TaskProgress()
    plugin = worker.plugins.get(METRIC)
    if not isinstance(plugin, ProgressPlugin):
        return TaskProgress()
    try:
        key = worker.get_current_task()
    except KeyError:  # not a task's thread
        return TaskProgress()
    plugin.begin(str(key), unit)
    return TaskProgress(plugin, str(key))


def install(client: Any) -> bool:
    """Give every worker of the cluster (and each one that joins later) the :class:`ProgressPlugin`.

    Returns:
        False when the cluster refuses it (``Client.register_plugin`` fails): the block
        tasks then report nothing.
    """
    try:
        client.register_plugin(ProgressPlugin(), name=METRIC)
    except (OSError, TimeoutError):
        raise  # a lost scheduler: reported by the run
    except Exception as exc:
        log.warning("the workers cannot take the progress plugin (%s): the watchdog judges block tasks by how "
                    "long they wait (cluster.stall_min_s), not by their progress", exc)
        return False
    return True
