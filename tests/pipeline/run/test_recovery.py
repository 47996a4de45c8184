"""``--resume`` from every state an interrupted or failed run can leave, against a clean run byte for byte.

Each case stops a real run (real scheduler and workers) at one stage boundary
by making that stage raise in this process, checks what was left, resumes, and
compares every product file with a clean run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import OutputExistsError
from s2c_batch.pipeline.output import layout
from s2c_batch.pipeline.output.ledger import BlockLedger
from s2c_batch.pipeline.output.store import is_consolidated
from s2c_batch.pipeline.run import runner
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import SMALL, assert_same_products, run_small

BLOCKS = 9  # 300 x 260 in blocks of 128


class Stop(Exception):
    """The test stops the run here."""


def _raise(*args: object, **kwargs: object) -> None:
    raise Stop("stopped by the test")


def _then_stop(fn: Callable[..., Any], before_stop: Callable[[], None] = lambda: None) -> Callable[..., Any]:
    def stage(*args: object, **kwargs: object) -> None:
        fn(*args, **kwargs)
        before_stop()
        raise Stop("stopped by the test")

    return stage


def _stop_after_blocks(n: int) -> Callable[..., None]:
    add = BlockLedger.add
    calls = []

    def record(self: BlockLedger, index: tuple[int, int]) -> None:
        if len(calls) == n:
            raise Stop("stopped by the test")
        calls.append(index)
        add(self, index)

    return record


def _leave_partial_cogs(out: Path) -> Callable[[], None]:
    def damage() -> None:
        cog = out / "change_mask.tif"
        cog.write_bytes(cog.read_bytes()[: cog.stat().st_size // 2])  # as after a power cut
        (out / ".change_prob.cog.tmp.tif").write_bytes(b"half a COG")
        (out / ".stac-item.json.999.tmp").write_text("{")

    return damage


# stage boundary -> (what stops there, blocks a resume keeps)
STOPS: dict[str, tuple[Callable[[pytest.MonkeyPatch, Path], None], int]] = {
    "before_run_json": (lambda mp, out: mp.setattr(runner, "connect", _raise), 0),
    "run_json_no_store": (lambda mp, out: mp.setattr(runner, "create_products_store", _raise), 0),
    "store_no_block": (lambda mp, out: mp.setattr(runner, "create_products_store",
                                                  _then_stop(runner.create_products_store)), 0),
    "some_blocks": (lambda mp, out: mp.setattr(BlockLedger, "add", _stop_after_blocks(3)), 3),
    "blocks_no_cogs": (lambda mp, out: mp.setattr(runner, "write_cogs", _raise), BLOCKS),
    "cogs_partial": (lambda mp, out: mp.setattr(runner, "write_cogs",
                                                _then_stop(runner.write_cogs, _leave_partial_cogs(out))), BLOCKS),
    "cogs_no_derived": (lambda mp, out: mp.setattr(runner, "write_extras", _raise), BLOCKS),
}


@pytest.mark.cluster
@pytest.mark.parametrize("stage", list(STOPS))
def test_run__resume_after_a_stop_at_each_stage_equals_a_clean_run(
    stage: str, scene: tuple[Path, Path], clean: Path, tmp_path: Path, dask_cluster,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    stop, kept = STOPS[stage]
    with monkeypatch.context() as mp:
        stop(mp, out)
        with pytest.raises(Stop, match="stopped by the test"):
            run_small(scene, out, dask_cluster.address)
    record = layout.RUN_JSON
    if stage == "before_run_json":
        assert not (out / record).exists()
    else:
        run = json.loads((out / record).read_text())
        assert run["status"] == "failed" and run["error"] == "Stop: stopped by the test"
    assert (out / layout.STORE).exists() == (stage not in ("before_run_json", "run_json_no_store"))
    if (out / layout.STORE).exists():  # a stopped run's store is not consolidated as if complete
        assert not is_consolidated(out / layout.STORE)
    assert len(BlockLedger(out).done()) == kept

    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.status == "complete" and res.blocks_reused == kept
    assert is_consolidated(out / layout.STORE)
    assert_same_products(out, clean)  # zarr.json with its consolidated metadata included
    assert BlockLedger(out).done() == {(i, j) for i in range(3) for j in range(3)}
    assert not list(out.glob(".*tmp*")), "temporaries of the stopped run are left"


@pytest.mark.cluster
def test_run__resume_recomputes_blocks_whose_shards_are_missing_or_torn(
    scene: tuple[Path, Path], clean: Path, tmp_path: Path, dask_cluster,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    store = out / layout.STORE
    (store / "change_prob" / "c" / "0" / "1").unlink()  # recorded, then lost in a crash
    torn = store / "change_mask" / "c" / "1" / "1"
    torn.write_bytes(torn.read_bytes()[:-100])
    zeroed = store / "change_prob" / "c" / "2" / "2"
    zeroed.write_bytes(bytes(zeroed.stat().st_size))  # the size survived, the data did not
    (store / "change_prob" / "c" / "0" / "0.1f2e.partial").write_bytes(b"an unfinished shard write")
    with open(out / ".s2c" / "blocks.done", "a") as f:
        f.write("7 7\n2 ")  # an entry out of the plan, then a torn line
    assert is_consolidated(store)

    # While the resumed run rewrites blocks, the complete run's consolidated metadata is gone.
    seen = []
    write_cogs = runner.write_cogs

    def note_then_write(*args: Any, **kwargs: Any) -> Any:
        seen.append(is_consolidated(out / layout.STORE))
        return write_cogs(*args, **kwargs)

    monkeypatch.setattr(runner, "write_cogs", note_then_write)
    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert seen == [False] and is_consolidated(out / layout.STORE)
    assert res.blocks_reused == BLOCKS - 3
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["blocks"]["computed"] == 3
    assert_same_products(out, clean)
    assert (out / ".s2c" / "blocks.done").read_text().count("\n") == BLOCKS


@pytest.mark.cluster
def test_run__resume_without_run_json_trusts_the_store_fingerprint(
    scene: tuple[Path, Path], clean: Path, tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    (out / "run.json").unlink()
    with pytest.raises(OutputExistsError, match="already holds a run; pass --resume"):
        run_small(scene, out, dask_cluster.address)
    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.blocks_reused == BLOCKS
    assert_same_products(out, clean)
    with pytest.raises(OutputExistsError, match="another fingerprint"):  # its products are protected
        run_change_detection(*scene, out, load_config("cva", [*SMALL, "model.threshold=0.2"]),
                             scheduler=dask_cluster.address, resume=True, progress=False)


@pytest.mark.cluster
def test_run__resume_of_a_failed_run_of_other_inputs_without_products_starts_afresh(
    scene: tuple[Path, Path], clean: Path, tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    out = tmp_path / "out"
    (out / ".s2c").mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({"status": "failed", "fingerprint": "other inputs",
                                              "error": "InputError: cannot read 't2.tif'"}))
    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.status == "complete" and res.blocks_reused == 0
    assert_same_products(out, clean)


@pytest.mark.cluster
def test_run__sigkill_once_the_store_exists_then_resume_equals_a_clean_run(
    scene: tuple[Path, Path], clean: Path, tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    out = tmp_path / "out"
    sets = sum((["--set", s] for s in SMALL), [])
    proc = subprocess.Popen(
        [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", "run", *map(str, scene),
         "--out", str(out), "--config", "cva", "--scheduler", dask_cluster.address, "--no-progress", *sets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not (out / layout.STORE / "zarr.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.status == "complete"
    assert_same_products(out, clean)


def test_block_ledger__torn_and_malformed_lines_are_not_blocks(tmp_path: Path) -> None:
    (tmp_path / ".s2c").mkdir()
    ledger = BlockLedger(tmp_path)
    ledger.path.write_text("0 0\n1 2\nx y\n3\n12 3")  # the process died while appending "12 34\n"
    assert ledger.done() == {(0, 0), (1, 2)}
    ledger.rewrite({(0, 0)})
    ledger.add((4, 5))
    assert ledger.path.read_text() == "0 0\n4 5\n"
