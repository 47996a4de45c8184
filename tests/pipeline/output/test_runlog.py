"""run.json through a Location, and the stage timer that records into it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.runlog import RunLog, Timings, read_record


def test_timings__a_stage_counts_only_when_it_succeeds() -> None:
    timings = Timings()
    with timings.stage("open"):
        pass
    with pytest.raises(RuntimeError), timings.stage("blocks"):
        raise RuntimeError("failed")
    timings.total()
    assert list(timings.rounded()) == ["open", "total"]
    assert all(v >= 0 for v in timings.rounded().values())


def test_runlog__writes_the_record_and_its_stage_times(tmp_path: Path) -> None:
    out = FolderLocation(tmp_path)
    log = RunLog(out)
    assert read_record(out) is None
    with log.stage("open"):
        pass
    log.update(status="running", timings_s=log.timings.rounded())
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "running" and list(record["timings_s"]) == ["open"]
    assert read_record(out) == record


def test_runlog__a_failed_write_names_the_file(tmp_path: Path) -> None:
    log = RunLog(FolderLocation(tmp_path / "missing"))
    with pytest.raises(OutputError, match=r"writing '.*missing/run\.json' failed"):
        log.update(status="running")
    assert not log.update_quietly(status="failed")
