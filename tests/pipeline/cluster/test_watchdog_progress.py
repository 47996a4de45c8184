"""Slow is not stuck: a long block task that makes progress finishes; a frozen worker is still caught.

The tiny config's real architectures on a real scheduler and two nanny-managed
workers. One block holds every tile, so its tiles task is one long task of many
steps (one tile per batch here; four in the heavy case, the 2048-pixel block of
issue 30); ``cluster.stall_min_s`` is far shorter than the task. Before issue 30 the
watchdog restarted such a task at ``stall_min_s`` every time and the run failed.

The frozen worker is stopped with ``SIGSTOP`` in the middle of that task: it neither
steps nor heartbeats, and the watchdog must restart it one progress deadline after
its last step; the run completes with the products of the clean run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from s2c_batch.pipeline.cluster.progress import METRIC
from s2c_batch.pipeline.cluster.watchdog import STACKS_TIMEOUT_S
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import RunResult, run_change_detection

from testutils import RealCluster, assert_same_products, make_pair

#: Issue 30's setting: a floor of 10 s before the first tile on a worker (a cold first
#: call), then 10 x the median step there, at least 10 s (stall_idle_min_s keeps its 30 s,
#: but the least deadline is never above the floor).
DEADLINES = ["cluster.stall_min_s=10"]
#: Quick to write: the products the test compares, no polygons, quicklook or STAC.
OUTPUT = ["output.polygons=false", "output.quicklook=false", "output.stac=false"]
#: Steps the tiles task has reported when its worker is frozen.
FREEZE_AT_STEP = 3


@dataclass(frozen=True)
class Case:
    """A scene of one block and the settings of its run."""

    size: int
    settings: tuple[str, ...]
    tiles: int


CASES = [
    pytest.param(Case(1024, ("tiling.block_size=1024", "model.batch_size=1", *DEADLINES, *OUTPUT), 25), id="1024"),
    pytest.param(Case(2048, ("tiling.block_size=2048", *DEADLINES, *OUTPUT), 121), id="2048",
                 marks=pytest.mark.heavy),
]


@dataclass
class Slow:
    """The cluster, the scene, and the clean run's products and record."""

    cluster: RealCluster
    case: Case
    scene: tuple[Path, Path]
    clean: Path
    clean_s: float
    run: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module", params=CASES)
def slow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slow]:
    """Two nanny-managed workers; the clean run of a scene of one block (tiny config)."""
    case: Case = request.param
    root = tmp_path_factory.mktemp(f"slow-{case.size}")
    cluster = RealCluster.start(root, 2, prefix="slow", nanny=True)
    try:
        scene = make_pair(root, case.size, case.size, seed=11)
        t0 = time.perf_counter()
        _run(case, scene, root / "clean", cluster.address)
        took = time.perf_counter() - t0
        yield Slow(cluster, case, scene, root / "clean", took, json.loads((root / "clean" / "run.json").read_text()))
    finally:
        cluster.stop()


def _run(case: Case, scene: tuple[Path, Path], out: Path, scheduler: str) -> RunResult:
    return run_change_detection(*scene, out, load_config("tiny", list(case.settings)), scheduler=scheduler,
                                progress=False)


@pytest.mark.cluster
def test_run__a_long_block_task_that_progresses_completes_without_a_stall(slow: Slow) -> None:
    assert slow.run["status"] == "complete" and "stalls" not in slow.run, slow.run.get("stalls")
    assert slow.run["config"]["cluster"]["stall_min_s"] == 10 and slow.run["blocks"]["computed"] == 1


class Freezer(threading.Thread):
    """Stops the worker of the run's tiles task with ``SIGSTOP`` once it has reported some steps."""

    def __init__(self, address: str) -> None:
        super().__init__(name="freezer", daemon=True)
        self.address = address
        self.frozen_at: float | None = None
        self.steps = 0
        self.worker = ""
        self.pid = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with Client(self.address, timeout="30s", set_as_default=False) as client:
                while not self.stop.is_set():
                    for worker, info in client.scheduler_info(n_workers=-1)["workers"].items():
                        report = (info.get("metrics") or {}).get(METRIC) or {}
                        for key, task in report.get("tasks", {}).items():
                            if key.startswith("s2c-tiles-") and task["steps"] >= FREEZE_AT_STEP:
                                self.pid = client.run(os.getpid, workers=[worker])[worker]
                                os.kill(self.pid, signal.SIGSTOP)
                                self.frozen_at, self.steps, self.worker = time.time(), task["steps"], worker
                                return
                    time.sleep(0.05)
        except BaseException as exc:
            self.error = exc

    def thaw(self) -> None:
        """Let a worker the watchdog did not kill go on (it belongs to this test's cluster)."""
        self.stop.set()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass  # killed by its nanny, as it should be


@pytest.mark.cluster
def test_run__a_worker_frozen_in_the_middle_of_the_task_is_caught_within_its_progress_deadline(
    slow: Slow, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    freezer = Freezer(slow.cluster.address)
    freezer.start()
    out = tmp_path / "out"
    try:
        res = _run(slow.case, slow.scene, out, slow.cluster.address)
    finally:
        freezer.thaw()
        freezer.join(30)
    assert freezer.error is None and freezer.frozen_at is not None, freezer.error
    assert res.status == "complete"
    assert_same_products(out, slow.clean)
    [stall] = json.loads((out / "run.json").read_text())["stalls"]
    assert set(stall) == {"block", "task", "worker", "seconds", "idle_s", "deadline_s", "progress", "reason",
                          "action", "outcome"}
    assert stall["block"] == [0, 0] and re.fullmatch(r"s2c-tiles-\w+-0-0", stall["task"])
    assert (stall["worker"], stall["action"], stall["outcome"]) == (freezer.worker, "worker restarted",
                                                                    "written after retry")
    progress = stall["progress"]
    assert set(progress) == {"steps", "done", "total", "unit", "step_s", "expected_s"}
    assert progress["unit"] == "tiles predicted" and progress["total"] == slow.case.tiles
    assert FREEZE_AT_STEP <= freezer.steps <= progress["steps"] and progress["done"] < progress["total"]
    # Its deadline came from its measured steps, and it was caught one deadline after its last step.
    assert stall["deadline_s"] == pytest.approx(max(10.0, 10 * progress["step_s"]), abs=0.2)
    assert stall["deadline_s"] <= stall["idle_s"] <= stall["deadline_s"] + 3, stall  # (rounded to 0.1 s)
    measured = r"10 x [\d.]+ s, the median step of its kind on this worker"
    assert re.fullmatch(rf"no progress for \d+ s since its last step \(\d+ of {slow.case.tiles} tiles predicted\); "
                        rf"deadline \d+ s = ({measured}|the least deadline \({measured}, is shorter\))"
                        r"(; the worker's last report is \d+ s old)?", stall["reason"]), stall["reason"]
    [record] = [r for r in caplog.records if r.getMessage().startswith("stall: block (0, 0)")]
    # Found one deadline after the freeze; logged once the frozen worker failed to answer.
    assert record.created - freezer.frozen_at <= stall["deadline_s"] + STACKS_TIMEOUT_S + 5
    assert "no answer within" in caplog.text
