"""The night's report as a page: escaped, self-contained, its map and table; the checks of its path."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.products.report import (
    ReportRun,
    check_report_file,
    html_table,
    record_footprint,
    render_report,
    report_run,
)

GRID = {"crs": "EPSG:32631", "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0], "height": 100, "width": 200}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_report_run__reads_the_quicklook_footprint_and_links_of_a_run(tmp_path: Path) -> None:
    out = tmp_path / "products" / "a"
    out.mkdir(parents=True)
    (out / "quicklook.png").write_bytes(_png())
    record = {"grid": GRID, "summary": {"largest_transitions": [{"from": "grass", "to": "building", "area_m2": 12.5}]}}
    row = report_run("a", "complete", FolderLocation(out), record=record, report_dir=tmp_path / "logs",
                     changed_area_km2=0.25, products=["quicklook.png", "change_mask.tif"])
    assert row.quicklook == _png() and row.links["change_mask.tif"] == "../products/a/change_mask.tif"
    assert row.transitions[0]["to"] == "building"
    ring = row.footprint["coordinates"][0]  # type: ignore[index]
    assert 2.9 < ring[0][0] < 3.1 and 45.0 < ring[0][1] < 45.2  # EPSG:32631 at 500000 E, 5000000 N
    assert record_footprint({}) is None and record_footprint({"grid": {"crs": "nonsense"}}) is None


def test_render_report__escaped_self_contained_with_map_and_table() -> None:
    footprint = record_footprint({"grid": GRID})
    runs = [ReportRun("<script>x</script>", "failed", error="t1 'a.tif' & <b>", footprint=footprint),
            ReportRun("b", "complete", "fresh", 0.5, 0.01, ({"from": "grass", "to": "building", "area_m2": 3.0},),
                      links={"change_mask.tif": "b/change_mask.tif"}, quicklook=_png(), footprint=footprint)]
    page = render_report("Night <1>", runs, meta=["when"], sections=[("Extra", html_table(["a", "b"], [[1, 2.5]]))])
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "t1 &#x27;a.tif&#x27; &amp; &lt;b&gt;" in page and "<title>Night &lt;1&gt;</title>" in page
    assert page.count("<img ") == 1 and re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert "grass &rarr; building: 3.0" in page and '<a href="b/change_mask.tif">change_mask.tif</a>' in page
    assert page.count("<polygon") == 1 and "(+1)" in page  # two runs, one footprint
    assert '<td class="num">1</td><td class="num">2.5000</td>' in page
    assert "1 complete, 1 failed" in page


def test_check_report_file__folder_missing_or_a_folder(tmp_path: Path) -> None:
    check_report_file(None, option="--night-report")
    check_report_file(tmp_path / "night.html", option="--night-report")
    with pytest.raises(OutputError, match=r"--night-report .* the folder .* does not exist; create it first"):
        check_report_file(tmp_path / "no" / "night.html", option="--night-report")
    with pytest.raises(OutputError, match=r"--night-report .* is a folder"):
        check_report_file(tmp_path, option="--night-report")
