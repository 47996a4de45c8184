"""A night of `s2c-batch batch` with runs and series: its summary, and its report in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from PIL import Image

from s2c_batch.pipeline.batch.runs_file import load_runs_file
from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.synth.series import write_synthetic_series

from testutils import ARTEFACTS, chromium, image_states, make_pair, screenshot, write_tif

BLOCKS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=64", "tiling.chunk_size=64"]


def _region(root: Path) -> Path:
    """Two pairs, a series of five dates (a glob), and a series whose last date is on another grid."""
    for i, (h, w) in enumerate([(90, 130), (120, 100)]):
        (root / "scenes" / f"tile{i}").mkdir(parents=True)
        make_pair(root / "scenes" / f"tile{i}", h, w, seed=30 + i, nodata=0)
    write_synthetic_series(root / "scenes" / "place", n_dates=5, size=128, seed=9)
    bad = root / "scenes" / "bad"
    bad.mkdir()
    for p in sorted((root / "scenes" / "place").glob("date_0[01].tif")):
        shutil.copy(p, bad / p.name)
    odd = write_tif(bad / "date_02.tif", np.full((3, 100, 128), 60, np.uint8), nodata=0)
    with rasterio.open(odd, "r+") as dst:
        dst.update_tags(DATETIME="2024-07-01T10:30:00Z")
    doc = {
        "defaults": {"config": "cva", "set": BLOCKS},
        "runs": [{"name": f"tile{i}", "t1": f"scenes/tile{i}/t1.tif", "t2": f"scenes/tile{i}/t2.tif",
                  "out": f"products/tile{i}"} for i in range(2)],
        "series": [{"name": "place", "dates": "scenes/place/date_*.tif", "out": "products/place", "persistence": 1},
                   {"name": "bad", "dates": ["scenes/bad/date_00.tif", "scenes/bad/date_01.tif",
                                             "scenes/bad/date_02.tif"], "out": "products/bad"}],
    }
    path = root / "RUNS.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.cluster
def test_batch__runs_and_series_in_one_night_with_a_report_that_opens_offline(tmp_path: Path,
                                                                             dask_cluster) -> None:  # noqa: ANN001
    runs = _region(tmp_path)
    summary_path = tmp_path / "logs" / "night.json"
    summary_path.parent.mkdir()
    args = ["batch", str(runs), "--scheduler", dask_cluster.address, "--summary", str(summary_path), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output  # the series on two grids failed, alone
    summary = json.loads(summary_path.read_text())
    assert summary["counts"] == {"complete": 2} and summary["failed"] == ["bad"]
    place, bad = summary["series"]
    assert place["status"] == "complete" and len(place["computed"]) == 4 and place["exit_code"] == 0
    assert bad["status"] == "failed" and bad["exit_code"] == 3 and "not on the same grid" in bad["error"]["message"]
    assert not (tmp_path / "products" / "bad").exists()  # refused before anything was written
    assert (tmp_path / "products" / "place" / "first_change.tif").exists()
    assert json.loads((tmp_path / "products" / "place" / "series.json").read_text())["persistence"] == 1

    report = tmp_path / "logs" / "night.html"
    assert summary["night_report"] == str(report)
    page = report.read_text(encoding="utf-8")
    # self-contained: no script, no remote resource; every image is embedded
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page) and "@import" not in page and "url(" not in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    # two runs' quicklooks, four pairs' quicklooks, the series' map of first dates
    assert len(sources) == 2 + 4 + 1 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert page.count('alt="first lasting change by date"') == 1
    for name in ("tile0", "tile1", "place/", "bad"):
        assert f"<td>{name}" in page, name
    assert "not on the same grid" in page and "<svg" in page and "lasting change by the date" in page
    link = re.search(r'<a href="([^"]+)">change_mask.tif</a>', page)
    assert link and (report.parent / link.group(1)).resolve() == (tmp_path / "products" / "tile0" / "change_mask.tif")

    browser = chromium()
    if browser is None:
        why = "chromium is not installed (apt-get install -y chromium): the report's rendering is not checked"
        if os.environ.get("S2C_REQUIRE_CHROMIUM"):
            pytest.fail(f"{why}; S2C_REQUIRE_CHROMIUM is set (.ci/run), so CI must render it")
        pytest.skip(why)
    states = image_states(report, browser, tmp_path / "chromium-profile")
    assert len(states) == 7
    assert all(s["complete"] and s["width"] > 0 and s["height"] > 0 for s in states), states
    shot = screenshot(report, ARTEFACTS / "night-report.png", browser, tmp_path / "chromium-profile-2")
    with Image.open(shot) as png:
        assert png.size == (1280, 2400) and len(np.unique(np.asarray(png.convert("L")))) > 16  # something was drawn

    again = CliRunner().invoke(cli, args)
    summary = json.loads(summary_path.read_text())
    assert again.exit_code == 1 and summary["counts"] == {"skipped": 2}
    assert summary["series"][0]["computed"] == [] and summary["series"][0]["status"] == "complete"


def test_load_runs_file__series_entries_are_checked_with_the_runs(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_bytes(b"")
    path = tmp_path / "RUNS.yaml"
    path.write_text(yaml.safe_dump({"series": [
        {"name": "x", "dates": "nothing/*.tif", "out": "p/x"},
        {"name": "y", "dates": 3, "out": "p/y", "colour": "red"},
        {"name": "z", "dates": ["a.tif", "b.tif"], "out": "p/x", "against": "last"},
    ]}))
    with pytest.raises(ConfigError) as info:
        load_runs_file(path)
    text = str(info.value)
    assert "dates 'nothing/*.tif' matches no file" in text
    assert "series[1]: unknown key(s) ['colour']" in text and "dates must be a glob" in text
    assert "series.against must be one of ['previous', 'first']" in text
    path.write_text(yaml.safe_dump({"series": [{"dates": ["a.tif", "s3://bucket/b.tif"], "out": "p/ok"}]}))
    loaded = load_runs_file(path)
    assert loaded.runs == () and loaded.series[0].name == "ok"
    assert [d.text for d in loaded.series[0].dates] == [str(tmp_path / "a.tif"), "s3://bucket/b.tif"]


def test_readme__nightly_runs_yaml_with_a_series_loads_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    example = next(b for b in blocks if "series:" in b and "dates: scenes/31UFS/*.tif" in b)
    (tmp_path / "region.yaml").write_text(example)
    (tmp_path / "scenes" / "31UFS").mkdir(parents=True)
    for day in ("2025-06-01", "2025-06-06"):
        (tmp_path / "scenes" / "31UFS" / f"{day}.tif").write_bytes(b"")
    loaded = load_runs_file(tmp_path / "region.yaml")
    assert [r.name for r in loaded.runs] == ["31UGS"]
    (series,) = loaded.series
    assert series.name == "31UFS" and series.out.url == str(tmp_path / "series" / "31UFS")
    assert [Path(d.text).name for d in series.dates] == ["2025-06-01.tif", "2025-06-06.tif"]
    assert (series.cfg.series.against, series.cfg.series.persistence, series.cfg.output.min_area_m2) == (
        "previous", 2, 50.0)
