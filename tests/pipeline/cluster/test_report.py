"""``--report``: checked before any work, and never the reason a finished run fails."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.cluster.report import check_report_path
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import RealCluster, free_port, make_pair

SMALL = ["tiling.tile_size=256", "tiling.overlap=64", "tiling.chunk_size=256", "tiling.block_size=512"]


def test_check_report_path__missing_folder_or_folder_given(tmp_path: Path) -> None:
    check_report_path(None)
    check_report_path(tmp_path / "report.html")
    with pytest.raises(OutputError, match=r"--report .*nowhere.*does not exist; create it first"):
        check_report_path(tmp_path / "nowhere" / "report.html")
    with pytest.raises(OutputError, match=r"--report .* is a folder; give a file name"):
        check_report_path(tmp_path)


def test_run__report_in_a_missing_folder_fails_before_anything_is_written(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 300, 300)
    out = tmp_path / "out"
    args = ["run", str(t1), str(t2), "--out", str(out), "--config", "cva", "--no-progress",
            "--report", str(tmp_path / "nowhere" / "report.html")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and isinstance(result.exception, OutputError)
    assert "does not exist; create it first" in str(result.exception)
    assert not out.exists()


@pytest.mark.cluster
def test_run__report_without_bokeh_on_the_scheduler_warns_and_the_run_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real scheduler process that has no bokeh cannot render the report; the run still completes."""
    t1, t2 = make_pair(tmp_path, 600, 600, seed=2)
    port = free_port()
    no_bokeh = "import sys; sys.modules['bokeh'] = None; from distributed.cli.dask_scheduler import main; main()"
    sched = subprocess.Popen([sys.executable, "-c", no_bokeh, "--host", "127.0.0.1", "--port", str(port)],
                             stdout=open(tmp_path / "scheduler.log", "ab"), stderr=subprocess.STDOUT)
    cluster = RealCluster(f"tcp://127.0.0.1:{port}", sched, [], tmp_path)
    try:
        cluster.start_worker("no-bokeh-worker")
        cluster.wait_for_workers(1)
        report = tmp_path / "report.html"
        with caplog.at_level(logging.WARNING, logger="s2c_batch.pipeline.cluster.report"):
            res = run_change_detection(t1, t2, tmp_path / "out", load_config("cva", SMALL), progress=False,
                                       report=report, scheduler=cluster.address)
    finally:
        for proc in [*cluster.workers, sched]:
            proc.terminate()
            proc.wait(timeout=20)
    assert res.status == "complete"
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "complete"
    assert (tmp_path / "out" / "change_prob.tif").is_file()
    assert not report.exists()
    assert any("could not save the performance report" in r.getMessage() and "bokeh" in r.getMessage()
               for r in caplog.records)
