"""Reliability: killed workers, interrupts, locks and unwritable outputs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import OutputError, OutputLockedError
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import assert_equals_oracle, cva_oracle, make_pair, read_band

MANY_BLOCKS = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128"]


def _wait_for_blocks(ledger: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ledger.exists() and len(ledger.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {n} blocks written to {ledger} in {timeout}s")


def _equals_oracle(out: Path, t1: Path, t2: Path) -> None:
    got = {name: read_band(out / f"{name}.tif") for name in ("change_prob", "change_mask")}
    assert_equals_oracle(got, cva_oracle(t1, t2))


@pytest.fixture(scope="module")
def big_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("big"), 1536, 1536, seed=11, nodata=0)


@pytest.mark.cluster
def test_run__worker_killed_mid_run_does_not_change_products(
    big_pair: tuple[Path, Path], tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    victim = dask_cluster.start_worker("victim")
    dask_cluster.wait_for_workers(3)
    out = tmp_path / "out"
    cfg = load_config("cva", MANY_BLOCKS)
    import threading

    def kill_when_running() -> None:
        _wait_for_blocks(out / ".s2c" / "blocks.done", 10)
        os.kill(victim.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    res = run_change_detection(*big_pair, out, cfg, scheduler=dask_cluster.address, progress=False)
    killer.join(timeout=5)
    assert victim.wait(timeout=10) == -signal.SIGKILL, "the worker was not killed during the run"
    assert res.status == "complete" and res.blocks == 144
    _equals_oracle(out, *big_pair)


def _run_cli(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.cluster
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run__interrupt_marks_failed_and_resume_finishes(
    big_pair: tuple[Path, Path], tmp_path: Path, dask_cluster, sig: int  # noqa: ANN001
) -> None:
    out = tmp_path / "out"
    sets = sum((["--set", s] for s in MANY_BLOCKS), [])
    args = ["run", str(big_pair[0]), str(big_pair[1]), "--out", str(out), "--config", "cva",
            "--scheduler", dask_cluster.address, "--no-progress", *sets]
    proc = _run_cli(args)
    _wait_for_blocks(out / ".s2c" / "blocks.done", 5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "interrupted" in run["error"]
    assert not (out / "change_prob.tif").exists()
    assert not (out / ".s2c" / "lock").exists()
    done_before = len((out / ".s2c" / "blocks.done").read_text().splitlines())
    assert 5 <= done_before < 144

    res = run_change_detection(*big_pair, out, load_config("cva", MANY_BLOCKS),
                               scheduler=dask_cluster.address, resume=True, progress=False)
    assert res.blocks_reused == done_before
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    _equals_oracle(out, *big_pair)


def test_run__lock_held_by_live_process_refuses(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 64, 64)
    out = tmp_path / "out"
    (out / ".s2c").mkdir(parents=True)
    (out / ".s2c" / "lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(OutputLockedError, match="is locked by another run"):
        run_change_detection(t1, t2, out, load_config("cva"), progress=False)


def test_run__stale_lock_is_cleared(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    t1, t2 = make_pair(tmp_path, 64, 64)
    out = tmp_path / "out"
    (out / ".s2c").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".s2c" / "lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    res = run_change_detection(t1, t2, out, load_config("cva", ["cluster.n_workers=1"]), progress=False)
    assert res.status == "complete"
    assert "stale lock" in caplog.text
    assert not (out / ".s2c" / "lock").exists()


def test_run__unwritable_output_is_exit_4(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 64, 64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is not writable") as exc:
        run_change_detection(t1, t2, blocker / "out", load_config("cva"), progress=False)
    assert exc.value.exit_code == 4


@pytest.mark.cluster
def test_run__wrong_architecture_checkpoint_exit_2_and_nothing_written(
    tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    import torch
    from safetensors.torch import save_file

    from s2c_batch.pipeline.errors import CheckpointError

    t1, t2 = make_pair(tmp_path, 64, 64)
    ckpt = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3, 3)}, str(ckpt))
    out = tmp_path / "out"
    cfg = load_config("tiny", [f"model.cach_checkpoint={ckpt}"])
    with pytest.raises(CheckpointError, match=r"model\.cach_checkpoint .*holds another architecture") as exc:
        run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
    assert exc.value.exit_code == 2
    assert not out.exists()


@pytest.mark.cluster
def test_run__all_nodata_scene_exit_3_and_no_product(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    from s2c_batch.pipeline.errors import InputError

    from testutils import write_tif

    t1 = write_tif(tmp_path / "a.tif", np.zeros((3, 100, 120), np.uint8), nodata=0)
    t2 = write_tif(tmp_path / "b.tif", np.full((3, 100, 120), 9, np.uint8), nodata=0)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no pixel that is valid in both") as exc:
        run_change_detection(t1, t2, out, load_config("cva"), scheduler=dask_cluster.address,
                             progress=False)
    assert exc.value.exit_code == 3
    assert {p.name for p in out.iterdir()} - {".s2c"} == {"run.json"}, "a product was left behind"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == f"InputError: {exc.value}"
    # The record of a failed run protects nothing: running again is not refused.
    with pytest.raises(InputError, match="no pixel that is valid in both"):
        run_change_detection(t1, t2, out, load_config("cva"), scheduler=dask_cluster.address, progress=False)


def test_write_block__os_error_is_output_error_naming_the_store(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    from s2c_batch.kernels.raster.tiling import Window
    from s2c_batch.pipeline.inputs.scene import Grid
    from s2c_batch.pipeline.output import store

    path = tmp_path / "change.zarr"
    grid = Grid(CRS.from_epsg(32631).to_wkt(), (0.5, 0, 500000, 0, -0.5, 5000000), 64, 64)
    store.create_store(path, grid, ["change_prob"], shard=64, chunk=32, attrs={})
    (path / "change_prob" / "c").write_text("not a folder")  # where the shard must go
    with pytest.raises(OutputError, match=r"writing block rows 0:64, cols 0:64 into .*change\.zarr' failed") as exc:
        store.write_block(path, Window(0, 0, 64, 64), {"change_prob": np.zeros((64, 64), np.uint8)})
    assert exc.value.exit_code == 4
