"""The deadline rule on literal worker reports: slow is not stuck, no progress for the deadline is."""

from __future__ import annotations

from typing import Any

import pytest

from s2c_batch.pipeline.cluster.deadlines import Rule, Verdict, judge, unreported

RULE = Rule(min_s=300, factor=10, idle_min_s=30)
TILES = "s2c-tiles-1a2b3c4d-0-0"
WRITE = "s2c-write-1a2b3c4d-0-1"
W = "tcp://127.0.0.1:4000"


def _task(running: float, idle: float, steps: int = 0, done: int = 0, total: int = 0, unit: str = "") -> dict[str, Any]:
    return {"running_s": running, "idle_s": idle, "steps": steps, "done": done, "total": total, "unit": unit}


def _report(tasks: dict[str, dict[str, Any]], kinds: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"seq": 7, "tasks": tasks, "kinds": kinds or {}}


@pytest.mark.parametrize(("rule", "kind", "expected"), [
    (RULE, None, 300.0),                                   # nothing measured: the floor
    (RULE, {"steps": 0, "step_s": 0.0}, 300.0),
    (RULE, {"steps": 1, "step_s": 200.0}, 2000.0),         # a first step slowed by loading the model
    (RULE, {"steps": 40, "step_s": 2.0}, 30.0),            # 10 x 2 s, raised to the least deadline
    (RULE, {"steps": 40, "step_s": 7.5}, 75.0),
    (Rule(min_s=10, factor=10, idle_min_s=30), {"steps": 3, "step_s": 0.2}, 10.0),  # least: never above the floor
    (Rule(min_s=5, factor=5, idle_min_s=3), {"steps": 3, "step_s": 0.2}, 3.0),
])
def test_rule_deadline__the_floor_until_a_step_is_measured_then_the_work(
        rule: Rule, kind: dict[str, Any] | None, expected: float) -> None:
    assert rule.deadline(kind)[0] == expected


def test_judge__a_task_that_progresses_is_never_stuck_however_long_it_has_run() -> None:
    report = _report({TILES: _task(running=86_400, idle=25, steps=5000, done=20000, total=40000,
                                   unit="tiles predicted")},
                     {"s2c-tiles-1a2b3c4d": {"steps": 5000, "step_s": 17.0}})
    assert judge(W, report, 0.5, RULE).stuck is None
    assert judge(W, report, 0.5, RULE).progressing == (TILES,)


def test_judge__no_step_for_the_deadline_is_a_stall_with_its_progress_and_reason() -> None:
    report = _report({TILES: _task(running=95, idle=31, steps=12, done=48, total=121, unit="tiles predicted")},
                     {"s2c-tiles-1a2b3c4d": {"steps": 12, "step_s": 2.5}})
    judgement = judge(W, report, 1.0, RULE)
    assert judgement.progressing == ()
    assert judgement.stuck == Verdict(
        task=TILES, worker=W, seconds=96.0, idle_s=32.0, deadline_s=30.0,
        progress={"steps": 12, "done": 48, "total": 121, "unit": "tiles predicted", "step_s": 2.5,
                  "expected_s": 75.6},
        reason="no progress for 32 s since its last step (48 of 121 tiles predicted); deadline 30 s = "
               "the least deadline (10 x 2.5 s, the median step of its kind on this worker, is shorter)")


def test_judge__a_frozen_workers_report_ages_until_its_task_is_stuck() -> None:
    report = _report({TILES: _task(running=20, idle=1, steps=8, done=8, total=25, unit="tiles predicted")},
                     {"s2c-tiles-1a2b3c4d": {"steps": 8, "step_s": 2.0}})
    assert judge(W, report, 28.0, RULE).stuck is None  # 29 s without a step: within 30 s
    stuck = judge(W, report, 30.5, RULE).stuck
    assert stuck is not None and stuck.idle_s == 31.5 and stuck.seconds == 50.5
    assert stuck.reason.endswith("is shorter); the worker's last report is 30 s old")


def test_judge__before_any_step_of_its_kind_the_floor_applies() -> None:
    report = _report({TILES: _task(running=299, idle=299)})
    assert judge(W, report, 0.0, RULE).stuck is None
    stuck = judge(W, _report({TILES: _task(running=301, idle=301)}), 0.0, RULE).stuck
    assert stuck is not None and stuck.deadline_s == 300 and stuck.progress == {
        "steps": 0, "done": 0, "total": 0, "unit": ""}
    assert stuck.reason == ("no progress for 301 s since it started; deadline 300 s = cluster.stall_min_s: "
                            "no step of its kind measured on this worker yet")


def test_judge__a_stuck_task_beside_a_progressing_one_waits_for_it() -> None:
    report = _report({TILES: _task(running=60, idle=1, steps=20, done=80, total=121, unit="tiles predicted"),
                      WRITE: _task(running=400, idle=399, steps=1, done=0, total=4, unit="products written")},
                     {"s2c-tiles-1a2b3c4d": {"steps": 20, "step_s": 3.0},
                      "s2c-write-1a2b3c4d": {"steps": 9, "step_s": 0.4}})
    judgement = judge(W, report, 0.0, RULE)
    assert judgement.stuck is not None and judgement.stuck.task == WRITE and judgement.progressing == (TILES,)


def test_judge__a_task_waiting_on_a_worker_busy_with_something_unreported_is_put_on_that() -> None:
    report = _report({"foreign-task-abc": _task(running=900, idle=900)})
    assert judge(W, report, 0.0, RULE, waiting=[(WRITE, 250.0)]).stuck is None
    stuck = judge(W, report, 0.0, RULE, waiting=[(WRITE, 310.0)]).stuck
    assert stuck is not None and (stuck.task, stuck.seconds, stuck.idle_s, stuck.reporting) == (
        "foreign-task-abc", 900.0, 310.0, False)
    idle = judge(W, _report({}), 0.0, RULE, waiting=[(WRITE, 310.0)]).stuck
    assert idle is not None and idle.task == WRITE


def test_judge__a_task_waiting_behind_a_progressing_one_is_not_stuck() -> None:
    report = _report({TILES: _task(running=5000, idle=2, steps=900, done=3600, total=4000, unit="tiles predicted")},
                     {"s2c-tiles-1a2b3c4d": {"steps": 900, "step_s": 5.5}})
    assert judge(W, report, 0.0, RULE, waiting=[(WRITE, 4000.0)]).stuck is None


def test_unreported__a_worker_without_reports_gets_the_floor() -> None:
    assert unreported(W, [(WRITE, 299.0)], RULE) is None
    verdict = unreported(W, [(WRITE, 301.0), (TILES, 12.0)], RULE)
    assert verdict is not None and (verdict.task, verdict.deadline_s, verdict.reporting) == (WRITE, 300.0, False)
