"""Block tasks' steps reach the scheduler with the workers' heartbeats (real `dask worker` processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from s2c_batch.pipeline.cluster import progress
from s2c_batch.pipeline.cluster.progress import METRIC, probe, task_label, task_progress

from testutils import RealCluster

KEY = "s2c-tiles-feedc0de-0-1"


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _report(client: Client, worker: str) -> dict[str, Any]:
    return client.scheduler_info(n_workers=-1)["workers"][worker]["metrics"].get(METRIC) or {}


def test_task_label__the_key_without_its_block_numbers() -> None:
    assert task_label("s2c-tiles-1a2b3c4d-2-3") == "s2c-tiles-1a2b3c4d"
    assert task_label("s2c-piece-1a2b3c4d-0-1-2-3") == "s2c-piece-1a2b3c4d"
    assert task_label("getitem-3f2a") is None and task_label("s2c-block") is None


def test_task_progress__outside_a_worker_the_steps_go_nowhere() -> None:
    task_progress("tiles predicted").step(1, 2)  # no worker: nothing to report to, nothing raised


@pytest.mark.cluster
def test_progress__a_tasks_steps_reach_the_scheduler_and_are_forgotten_when_it_ends(
    dask_cluster: RealCluster, tmp_path: Path
) -> None:
    def three_steps_then_wait(release: str) -> int:  # local: sent by value, the workers cannot import tests
        steps = task_progress("things done")
        for k in (1, 2, 3):
            time.sleep(0.05)
            steps.step(k, 5)
        while not Path(release).exists():
            time.sleep(0.05)
        steps.step(5, 5, "things checked")
        return 5

    release = tmp_path / "release"
    with Client(dask_cluster.address, timeout="30s") as client:
        progress.install(client)
        progress.install(client)  # every run registers it: a worker keeps its counts
        fut = client.submit(three_steps_then_wait, str(release), key=KEY, pure=False)
        worker = _wait_for("the task on a worker", lambda: next(
            (w for w, keys in client.processing().items() if KEY in keys), None))
        report = _wait_for("three steps in a heartbeat", lambda: (
            r if (r := _report(client, worker)).get("tasks", {}).get(KEY, {}).get("steps") == 3 else None))
        task = report["tasks"][KEY]
        assert {k: task[k] for k in ("steps", "done", "total", "unit")} == {
            "steps": 3, "done": 3, "total": 5, "unit": "things done"}
        assert task["running_s"] >= 0.15 and 0 <= task["idle_s"] <= task["running_s"]
        assert 0 <= time.time() - report["at"] < 30  # the worker's clock when it made the report
        assert report["kinds"]["s2c-tiles-feedc0de"]["steps"] == 3
        assert 0.04 <= report["kinds"]["s2c-tiles-feedc0de"]["step_s"] < task["running_s"]
        later = _wait_for("a newer heartbeat", lambda: (
            r if (r := _report(client, worker)).get("seq", 0) > report["seq"] else None))
        assert later["tasks"][KEY]["idle_s"] > task["idle_s"]  # waiting: no step, its idle time grows
        asked = client.run(probe, workers=[worker])[worker]
        assert asked["tasks"][KEY]["steps"] == 3 and asked["seq"] >= later["seq"]
        release.touch()
        assert fut.result(timeout=30) == 5
        after = _wait_for("a heartbeat after the task", lambda: (
            r if KEY not in (r := _report(client, worker)).get("tasks", {KEY: None}) else None))
        assert after["tasks"] == {} and after["kinds"] == {}
        assert client.run(probe, workers=[worker])[worker]["tasks"] == {}


@pytest.mark.cluster
def test_progress__module_calls_count_as_progress_all_through_the_task_and_nothing_else_does(
    dask_cluster: RealCluster, tmp_path: Path
) -> None:
    def batches(release: str) -> int:  # a model layer every 0.1 s, for far longer than a heartbeat
        import torch

        from s2c_batch.pipeline.cluster import progress as p

        steps = p.task_progress("tiles predicted")
        layer = torch.nn.Linear(4, 4)
        with steps.model_calls():
            with torch.no_grad():
                for n, phase in enumerate(("first batch", "second batch"), 1):
                    while not Path(f"{release}.{phase}").exists():
                        layer(torch.zeros(1, 4))
                        time.sleep(0.1)
                    steps.step(n, 3)
                while not Path(f"{release}.hung").exists():  # stuck outside the model: no layer runs
                    time.sleep(0.1)
        return int(p._hook is None)

    release = tmp_path / "release"
    key = "s2c-tiles-0ddba11-0-0"
    with Client(dask_cluster.address, timeout="30s") as client:
        progress.install(client)
        fut = client.submit(batches, str(release), key=key, pure=False)
        worker = _wait_for("the task on a worker", lambda: next(
            (w for w, keys in client.processing().items() if key in keys), None))

        def after(what: str, seconds: float, steps: int) -> dict[str, Any]:
            """The task's report made at least ``seconds`` after ``steps`` steps were first seen."""
            seen = _wait_for(what, lambda: (
                r if (r := _report(client, worker)).get("tasks", {}).get(key, {}).get("steps") == steps
                and r["tasks"][key]["unit"] else None))
            time.sleep(seconds)
            return _wait_for("a newer report", lambda: (
                r if (r := _report(client, worker)).get("seq", 0) > seen["seq"] else None))["tasks"][key]

        first = after("the task reporting (torch imported)", 3, 0)
        assert first["steps"] == 0 and first["idle_s"] < 1.5, first  # no step for 3 s, yet it progresses
        Path(f"{release}.first batch").touch()
        second = after("the first step", 3, 1)
        assert second["steps"] == 1 and second["idle_s"] < 1.5, second  # measured, and layers still count
        Path(f"{release}.second batch").touch()
        hung = after("the second step", 3, 2)
        assert hung["steps"] == 2 and hung["running_s"] > hung["idle_s"] > 3, hung  # no layer, no step
        Path(f"{release}.hung").touch()
        assert fut.result(timeout=30) == 1  # torch's hook is removed when the task leaves model_calls
