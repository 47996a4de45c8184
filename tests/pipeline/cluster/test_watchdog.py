"""The watchdog: a block task that blocks forever is retried on a restarted worker, or fails the run cleanly.

A real scheduler and two nanny-managed workers; the write of block (1, 1)
blocks forever a chosen number of times (the test-only ``S2C_TEST_STALL`` hook,
``tests/stallhook.py``, preloaded by the workers) before it makes any progress; a block task
is stalled after 5 s without progress (5 times its worker's median step when that is longer),
so a healthy block on a loaded machine is not taken for a stall.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s2c_batch.pipeline.cluster.progress import METRIC
from s2c_batch.pipeline.cluster.watchdog import Watchdog, task_block, task_kind
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import ClusterError
from s2c_batch.pipeline.run.runner import RunResult, run_change_detection

from stallhook import STALL_ENV, STALL_HOOK
from testutils import RealCluster, assert_same_products, make_pair

SMALL = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128"]
FAST_DEADLINE = ["cluster.stall_min_s=5", "cluster.stall_factor=5", "cluster.retries=1"]


@pytest.fixture(scope="module")
def stalling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealCluster, Path, tuple[Path, Path]]]:
    """A cluster whose workers read the stall hook, the hook's file, and a 3 x 3-block scene."""
    root = tmp_path_factory.mktemp("stalling")
    hook = root / "stall"
    hook.write_text("1 1 0")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STALL_ENV, str(hook))  # inherited by the nannies and their workers
        cluster = RealCluster.start(root, 2, prefix="stall", nanny=True, preload=STALL_HOOK)
    try:
        yield cluster, hook, make_pair(root, 300, 260, seed=5, nodata=0)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def clean(stalling: tuple[RealCluster, Path, tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The products of the scene without a stall."""
    cluster, hook, scene = stalling
    _stall(hook, 0)
    out = tmp_path_factory.mktemp("clean") / "out"
    _run(scene, out, cluster.address)
    return out


def _stall(hook: Path, times: int) -> None:
    for claimed in hook.parent.glob(f"{hook.name}.*"):
        claimed.unlink()
    hook.write_text(f"1 1 {times}")


def _run(scene: tuple[Path, Path], out: Path, scheduler: str, *extra: str, **kw: object) -> RunResult:
    return run_change_detection(*scene, out, load_config("cva", [*SMALL, *FAST_DEADLINE, *extra]),
                                scheduler=scheduler, progress=False, **kw)  # type: ignore[arg-type]


def test_task_kind_and_block__from_keys() -> None:
    assert task_kind("s2c-write-1a2b3c4d-2-3") == "write" and task_block("s2c-write-1a2b3c4d-2-3") == (2, 3)
    assert task_kind("s2c-piece-1a2b3c4d-0-1-2-3") == "piece" and task_block("s2c-piece-1a2b3c4d-0-1-2-3") == (2, 3)


def test_watchdog__checks_often_enough_for_its_least_deadline() -> None:
    dog = Watchdog(client=None, token="t", factor=10, min_s=300, retries=2, idle_min_s=30)
    assert (dog.rule.least_s, dog.poll_s) == (30, 1.0)
    fast = Watchdog(client=None, token="t", factor=10, min_s=3, retries=2, idle_min_s=30)
    assert (fast.rule.least_s, fast.poll_s) == (3, 0.15)


class _Clocks:
    """The watchdog's clocks and one worker's last report, as the scheduler holds it."""

    def __init__(self) -> None:
        self.mono, self.wall, self.report = 0.0, 1000.0, {}

    def scheduler_info(self, n_workers: int = -1) -> dict[str, Any]:
        return {"workers": {"w": {"metrics": {METRIC: self.report}}}}


@pytest.mark.parametrize("skew", [0.0, 500.0, -500.0])
def test_watchdog_reports__a_report_ages_by_the_workers_clock_too_when_the_watchdog_looked_late(
    skew: float,
) -> None:
    fake = _Clocks()
    dog = Watchdog(client=fake, token="t", factor=10, min_s=10, retries=1, clock=lambda: fake.mono,
                   wall=lambda: fake.wall)

    def look(seq: int, made: float, mono: float) -> float:
        fake.report = {"seq": seq, "at": made + skew, "tasks": {}, "kinds": {}}
        fake.mono, fake.wall = mono, 1000.0 + mono
        return dog._reports({"w"})["w"][1]

    assert look(1, 1000.0, 0.0) == pytest.approx(0.0)  # the clocks' offset: the least delay seen
    assert look(5, 1019.5, 20.0) == pytest.approx(0.5)  # made 0.5 s before the watchdog looked
    assert look(5, 1019.5, 26.0) == pytest.approx(6.5)  # the same report, seen again: it ages
    # The worker froze at 1021; the watchdog could not look for 29 s and sees its last report first now.
    assert look(6, 1021.0, 50.0) == pytest.approx(29.0)


@pytest.mark.cluster
def test_run__a_stalled_block_is_retried_on_a_restarted_worker_and_listed_in_run_json(
    stalling: tuple[RealCluster, Path, tuple[Path, Path]], clean: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, hook, scene = stalling
    _stall(hook, 1)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    res = _run(scene, out, cluster.address)
    took = time.perf_counter() - t0
    assert res.status == "complete" and took < 60, f"{took:.0f} s"
    assert_same_products(out, clean)
    [stall] = json.loads((out / "run.json").read_text())["stalls"]
    assert stall["block"] == [1, 1] and re.fullmatch(r"s2c-(write|block)-\w+-1-1", stall["task"])
    assert stall["deadline_s"] >= 5 and stall["seconds"] > 0 and stall["action"] == "worker restarted"
    assert stall["outcome"] == "written after retry" and stall["worker"].startswith("tcp://127.0.0.1:")
    assert f"stall: block (1, 1) task {stall['task']} has run" in caplog.text and stall["worker"] in caplog.text
    assert "in stall_if_asked" in caplog.text, "the stalled worker's thread stacks are not in the log"


@pytest.mark.cluster
def test_run__a_block_stalled_in_every_retry_fails_cleanly_and_resume_completes(
    stalling: tuple[RealCluster, Path, tuple[Path, Path]], clean: Path, tmp_path: Path
) -> None:
    cluster, hook, scene = stalling
    _stall(hook, 2)  # cluster.retries=1: the first stall is retried, the second stops the run
    out = tmp_path / "out"
    with pytest.raises(ClusterError, match=r"block \(1, 1\) stalled 2 times: task s2c-(write|block)-\w+-1-1 "
                                           r"ran past its deadline of \d+ s on .*; the written blocks are kept: "
                                           r"run again with --resume") as exc:
        _run(scene, out, cluster.address)
    assert exc.value.exit_code == 1
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("ClusterError: block (1, 1) stalled 2 times")
    assert [(s["block"], s["outcome"]) for s in run["stalls"]] == [([1, 1], "failed")] * 2
    _stall(hook, 0)
    res = _run(scene, out, cluster.address, resume=True)
    assert res.status == "complete" and res.blocks_reused >= 1
    assert_same_products(out, clean)


@pytest.mark.cluster
def test_batch__a_stalled_block_is_retried_and_the_run_completes(
    stalling: tuple[RealCluster, Path, tuple[Path, Path]], tmp_path: Path
) -> None:
    import yaml
    from click.testing import CliRunner

    from s2c_batch.pipeline.cli import cli

    cluster, hook, scene = stalling
    _stall(hook, 1)
    runs = tmp_path / "RUNS.yaml"
    runs.write_text(yaml.safe_dump({"defaults": {"config": "cva", "set": [*SMALL, *FAST_DEADLINE]},
                                    "runs": [{"t1": str(scene[0]), "t2": str(scene[1]), "out": "out"}]}))
    result = CliRunner().invoke(cli, ["batch", str(runs), "--scheduler", cluster.address, "--no-progress",
                                      "--summary", str(tmp_path / "summary.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "summary.json").read_text())["counts"] == {"complete": 1}
    [stall] = json.loads((tmp_path / "out" / "run.json").read_text())["stalls"]
    assert stall["block"] == [1, 1] and stall["outcome"] == "written after retry"
