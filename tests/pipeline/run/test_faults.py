"""Real faults: a damaged tile inside a valid GeoTIFF, a killed scheduler, a full disk at each write stage.

Each checks the exit code, the one-line message, ``run.json``, and that
``--resume`` then gives the products of a clean run, byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output import layout, store
from s2c_batch.pipeline.output.ledger import BlockLedger
from s2c_batch.pipeline.run import runner

from testutils import SMALL, RealCluster, assert_same_products, fill_disk, make_pair, run_small, write_damaged_copy


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_args(t1: Path, t2: Path, out: Path, scheduler: str, *extra: str) -> list[str]:
    sets = sum((["--set", s] for s in SMALL), [])
    return ["run", str(t1), str(t2), "--out", str(out), "--config", "cva", "--scheduler", scheduler,
            "--no-progress", *sets, *extra]


@pytest.mark.cluster
def test_run__damaged_tile_is_exit_3_naming_file_band_pixels_and_not_retried(
    tmp_path: Path, dask_cluster, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    t1, good = make_pair(tmp_path, 512, 512, seed=2)
    t2 = write_damaged_copy(good, tmp_path / "t2-damaged.tif", tile=1)  # rows 0:256, cols 256:512
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(_run_args(t1, t2, out, dask_cluster.address, "--set", "cluster.retries=2"))
    err = capsys.readouterr().err
    assert exit_.value.code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.fullmatch(
        rf"Error: cannot read '{re.escape(str(t2))}': bands 1, 2, 3, pixels rows 0:256, cols 256:512 "
        r"\(reading rows \d+:\d+, cols \d+:\d+\): .*TIFFReadEncodedTile\(\) failed.*\. The file is damaged: "
        rf"re-download or re-copy it; `gdalinfo -checksum {re.escape(str(t2))}` finds such tiles",
        lines[0],
    ), lines[0]
    assert "Decoding error" in lines[0], "GDAL's decoder message is missing"
    assert "retry" not in caplog.text, "a damaged file was retried"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "InputError: " + lines[0].removeprefix("Error: ")
    # No product is left (a block task still running may leave shards, never a store's metadata).
    assert not (out / layout.STORE / "zarr.json").exists() and not (out / "change_prob.tif").exists()


@pytest.mark.cluster
def test_run__lost_scheduler_is_one_line_exit_1_and_resume_completes(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    scene = make_pair(tmp_path, 768, 768, seed=6, nodata=0)  # 36 blocks
    clean = tmp_path / "clean" / "out"
    run_small(scene, clean, dask_cluster.address)
    doomed = RealCluster.start(tmp_path, 1, prefix="doomed")
    try:
        out = tmp_path / "out"
        proc = _cli(*_run_args(*scene, out, doomed.address))
        ledger = out / ".s2c" / "blocks.done"
        deadline = time.time() + 120
        while not (ledger.exists() and ledger.read_text().count("\n") >= 3) and time.time() < deadline:
            time.sleep(0.01)
        os.kill(doomed.scheduler.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        doomed.stop()
    assert proc.returncode == 1, err
    kept = len(BlockLedger(out).done())
    assert 3 <= kept < 36, "the scheduler was not killed mid-run"
    assert err.strip().splitlines() == [
        f"Error: lost the Dask scheduler at {doomed.address}: {kept} of 36 blocks are written and kept; once a "
        "scheduler runs there (or with another --scheduler), run again with --resume to continue"
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"].startswith("ClusterError: lost the Dask scheduler")

    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.status == "complete" and res.blocks_reused == kept
    assert_same_products(out, clean)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root); skips where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
                    "test_write_block__os_error_is_output_error_naming_the_store covers the message")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill_after(fn: Callable[..., Any], disk: Path) -> Callable[..., Any]:
    def stage(*args: object, **kwargs: object) -> Any:
        result = fn(*args, **kwargs)
        fill_disk(disk)
        return result

    return stage


def _fill_before(fn: Callable[..., Any], disk: Path) -> Callable[..., Any]:
    def stage(*args: object, **kwargs: object) -> Any:
        fill_disk(disk)
        return fn(*args, **kwargs)

    return stage


# write stage -> (where the disk fills up: a function of the runner or of the store module, the message)
FULL: dict[str, tuple[Any, str, Callable[..., Callable[..., Any]], str]] = {
    "zarr_shard": (runner, "create_products_store", _fill_after,
                   r"writing block rows \d+:\d+, cols \d+:\d+ into '.*change\.zarr' failed "
                   r"\(No space left on device\)"),
    "cog": (runner, "write_cogs", _fill_before, r"writing COG '.*\.tif' failed \(No space left on device\)"),
    "derived": (runner, "write_extras", _fill_before, r"cannot write .* '.*' \(.*No space left on device\)"),
    "consolidated": (runner, "verify_products", _fill_after,
                     r"cannot consolidate the metadata of '.*change\.zarr' \(No space left on device\)"),
    "run_json": (store, "consolidate", _fill_after,
                 r"writing '.*run\.json' failed \(No space left on device\)"),
}


@pytest.mark.cluster
@pytest.mark.parametrize("stage", list(FULL))
def test_run__full_disk_at_each_write_stage_is_exit_4_and_resume_completes(
    stage: str, scene: tuple[Path, Path], clean: Path, small_disk: Path, dask_cluster,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = small_disk / "out"
    where, name, fill, message = FULL[stage]
    with monkeypatch.context() as mp:
        mp.setattr(where, name, fill(getattr(where, name), small_disk))
        with pytest.raises(OutputError, match=message + "; free space or fix the output folder, then run "
                                                         "again with --resume") as exc:
            run_small(scene, out, dask_cluster.address)
    assert exc.value.exit_code == 4
    assert json.loads((out / "run.json").read_text())["status"] in ("running", "failed")
    (small_disk / "ballast").unlink()
    res = run_small(scene, out, dask_cluster.address, resume=True)
    assert res.status == "complete"
    assert_same_products(out, clean)
