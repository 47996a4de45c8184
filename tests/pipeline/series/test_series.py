"""``s2c-batch series`` on a real cluster: a synthetic series of planted lasting changes, flickers and clouds.

Every pair's mask is checked against what was planted, every series product against the definition
(tests/testutils.py ``series_oracle``) pixel for pixel, and the planted events against their exact dates.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner
from PIL import Image

from s2c_batch.kernels.raster.series import first_change_rgb
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.config import InputConfig, load_config
from s2c_batch.pipeline.errors import ConfigError, InputError, OutputExistsError
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.series.dates import check_date_masks
from s2c_batch.pipeline.series.runner import run_series
from s2c_batch.pipeline.synth.series import SQUARE, SyntheticSeries, write_synthetic_series

from testutils import read_band, series_products_oracle, write_tif

#: cva (no model) over blocks of 64: each 128 px date is four blocks.
BLOCKS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=64", "tiling.chunk_size=64"]
PRODUCTS = ("first_change", "change_count", "persistent_change")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSeries:
    return write_synthetic_series(tmp_path_factory.mktemp("dates"), n_dates=6, size=128, seed=3)


def _series(args: list[str], scheduler: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["series", *args, "--config", "cva", *sum((["--set", s] for s in BLOCKS), []),
                                      "--scheduler", scheduler, "--no-progress"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _check_products(out: Path, series: SyntheticSeries, n_dates: int, against: str, persistence: int) -> dict:  # type: ignore[type-arg]
    """Every pair's mask equals the planted truth and every series product the definition's; returns the products."""
    truth = series.pair_truth(n_dates, against=against)  # type: ignore[arg-type]
    record = json.loads((out / "series.json").read_text())
    assert [p["name"] for p in record["pairs"]] == [
        f"{series.times[a]:%Y%m%dT%H%M%S}_{series.times[j + 1]:%Y%m%dT%H%M%S}"
        for j, a in enumerate([0] * (n_dates - 1) if against == "first" else range(n_dates - 1))]
    for j, pair in enumerate(record["pairs"]):
        np.testing.assert_array_equal(read_band(out / "pairs" / pair["name"] / "change_mask.tif"), truth[j],
                                      err_msg=f"pair {pair['name']}")
    want = series_products_oracle(truth, persistence, against)
    got = {name: read_band(out / f"{name}.tif") for name in PRODUCTS}
    for name in PRODUCTS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    return got


def _at(got: np.ndarray, series: SyntheticSeries, event: str) -> set[int]:
    return set(np.unique(got[series.event_cells(event)]).tolist())


@pytest.mark.cluster
def test_series__lasting_changes_kept_with_their_dates_flickers_dropped_then_one_night_more(
        synthetic: SyntheticSeries, tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    out = tmp_path / "series"
    five = [str(p) for p in synthetic.dates[:5]]
    night1 = _series([*five[::-1], "--out", str(out)], dask_cluster.address)  # any order: sorted by time
    assert night1["status"] == "complete" and len(night1["computed"]) == 4
    assert [d["datetime"] for d in night1["dates"]] == [f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in synthetic.times[:5]]
    got = _check_products(out, synthetic, 5, "previous", 2)
    first, count, persistent = (got[n] for n in PRODUCTS)
    assert _at(first, synthetic, "lasting from date 1") == {1}
    assert _at(first, synthetic, "lasting from date 2") == {2}
    assert _at(first, synthetic, "lasting from date 3") == {0}  # seen on date 3 of 0..4: not yet confirmed
    for flicker in ("flicker of one date", "flicker of two dates", "flicker, then lasting"):
        assert _at(persistent, synthetic, flicker) == {0} and _at(first, synthetic, flicker) == {0}
    assert _at(count, synthetic, "flicker of one date") == {2}  # the change and its return
    assert _at(count, synthetic, "flicker of two dates") == {2}
    lasting = (first > 0) & (first != 255)
    assert set(np.unique(persistent[lasting])) == {1} and not (persistent[~lasting & (first != 255)] == 1).any()
    # against what was planted: the two lasting changes five dates can confirm, the two flickers that came
    # back, and four changes still open on the last dates (pending: neither lasting nor flicker yet)
    summary, square = night1["summary"], SQUARE * SQUARE
    assert (summary["lasting_change_pixels"], summary["flicker_pixels"], summary["pending_change_pixels"]) == (
        2 * square, 2 * square, 4 * square)
    # the lookup table of first_change: in series.json, the COG's tags and the store's attributes
    record = json.loads((out / "series.json").read_text())
    assert record["status"] == "complete" and record["persistence"] == 2 and record["against"] == "previous"
    table = [d["datetime"] for d in record["dates"]]
    with rasterio.open(out / "first_change.tif") as src:
        assert [d["datetime"] for d in json.loads(src.tags()["S2C_SERIES_DATES"])] == table
    attrs = json.loads((out / "series.zarr" / "zarr.json").read_text())["attributes"]
    assert [d["datetime"] for d in attrs["dates"]] == table
    assert record["summary"]["lasting_change_pixels"] == int(lasting.sum())
    assert {d["index"]: d["pixels"] for d in record["summary"]["lasting_change_by_first_date"]} == {
        int(k): int((first == k).sum()) for k in np.unique(first[lasting])}
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    assert len([link for link in collection.links if link.rel == "item"]) == 4
    assert {"first_change", "change_count", "persistent_change", "series"} <= set(collection.assets)
    # the report's map of first dates: first_change decimated (here 1:1) and coloured one colour per date
    page = (out / "report.html").read_text(encoding="utf-8")
    png = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="first lasting change by date" ', page)
    assert png, "no series map in the report"
    with Image.open(io.BytesIO(base64.b64decode(png.group(1)))) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), first_change_rgb(first, 5))

    stamps = {p: os.stat(p).st_mtime_ns for p in out.glob("pairs/*/run.json")}
    night2 = _series([*map(str, synthetic.dates), "--out", str(out)], dask_cluster.address)
    assert night2["computed"] == [f"{synthetic.times[4]:%Y%m%dT%H%M%S}_{synthetic.times[5]:%Y%m%dT%H%M%S}"]
    assert [p["mode"] for p in night2["pairs"]] == ["skip"] * 4 + ["fresh"]
    assert stamps == {p: os.stat(p).st_mtime_ns for p in stamps}, "a finished pair was computed again"
    got = _check_products(out, synthetic, 6, "previous", 2)
    assert _at(got["first_change"], synthetic, "lasting from date 3") == {3}  # confirmed by the new night
    assert _at(got["first_change"], synthetic, "flicker, then lasting") == {3}
    assert _at(got["first_change"], synthetic, "lasting, unobserved on date 2") == {1}
    # consecutive pairs cannot see a return on a date the pixel was not observed (both pairs around it are
    # unknown): this flicker reads as lasting; --against first tells it apart (the test below)
    assert _at(got["first_change"], synthetic, "flicker, unobserved when it returns") == {1}
    assert (night2["summary"]["lasting_change_pixels"], night2["summary"]["flicker_pixels"],
            night2["summary"]["pending_change_pixels"]) == (6 * SQUARE * SQUARE, 2 * SQUARE * SQUARE, 0)


@pytest.mark.cluster
def test_series__against_first_skips_unobserved_dates_instead_of_resetting(
        synthetic: SyntheticSeries, tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    out = tmp_path / "series"
    result = _series([*map(str, synthetic.dates[:5]), "--out", str(out), "--against", "first"], dask_cluster.address)
    assert result["status"] == "complete"
    got = _check_products(out, synthetic, 5, "first", 2)
    first, persistent = got["first_change"], got["persistent_change"]
    # date 2 of this cell is nodata: skipped, so dates 3 and 4 confirm the change of date 1
    cell = synthetic.event_cells("lasting, unobserved on date 2")
    assert _at(first, synthetic, "lasting, unobserved on date 2") == {1}
    masks = [read_band(out / "pairs" / p["name"] / "change_mask.tif") for p in result["pairs"]]
    assert (masks[1][cell] == 255).all()  # the pair of date 2 does not know it
    # the return of this flicker is unobserved (nodata): skipped, and the next date says it came back
    assert _at(persistent, synthetic, "flicker, unobserved when it returns") == {0}
    assert (masks[2][synthetic.event_cells("flicker, unobserved when it returns")] == 255).all()
    assert _at(first, synthetic, "lasting from date 2") == {2}
    assert _at(persistent, synthetic, "cloud over unchanged ground") == {0}
    # one night more: every planted event is what it was planted as, with its exact first date
    result = _series([*map(str, synthetic.dates), "--out", str(out), "--against", "first"], dask_cluster.address)
    assert len(result["computed"]) == 1
    first = _check_products(out, synthetic, 6, "first", 2)["first_change"]
    for name in sorted({e.name for e in synthetic.events if e.kind != "cloud"}):
        planted = {e.date for e in synthetic.events if e.name == name and e.kind == "lasting"}
        assert _at(first, synthetic, name) == (planted or {0}), name
    square = SQUARE * SQUARE
    assert (result["summary"]["lasting_change_pixels"], result["summary"]["flicker_pixels"],
            result["summary"]["pending_change_pixels"]) == (5 * square, 3 * square, 0)


def test_series__bad_dates_are_refused_before_anything_is_written(synthetic: SyntheticSeries, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config("cva", BLOCKS)
    out = tmp_path / "series"
    with pytest.raises(ConfigError, match="at least 2 dates"):
        run_series([synthetic.dates[0]], out, cfg)
    with pytest.raises(ConfigError, match=r"given twice"):
        run_series([synthetic.dates[0], synthetic.dates[0]], out, cfg)
    untimed = write_tif(tmp_path / "untimed.tif", np.full((3, 128, 128), 50, np.uint8), nodata=0)
    with pytest.raises(InputError, match=r"1 of 3 dates carry no acquisition time: \['.*untimed\.tif'\].*DATETIME"):
        run_series([*synthetic.dates[:2], untimed], out, cfg)
    small = write_tif(tmp_path / "small.tif", np.full((3, 100, 128), 50, np.uint8), nodata=0)
    with rasterio.open(small, "r+") as dst:
        dst.update_tags(DATETIME="2025-01-01T00:00:00Z")
    with pytest.raises(InputError, match=r"not on the same grid.*input\.align=reproject"):
        run_series([*synthetic.dates[:2], small], out, cfg)
    assert not out.exists()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["series", str(synthetic.dates[0]), str(untimed), "--out", str(out), "--config", "cva"])
    assert exit_info.value.code == 3 and "no acquisition time" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["series", str(synthetic.dates[0]), "--out", str(out), "--set", "series.persistence=-1"])
    assert exit_info.value.code == 2 and "series.persistence must be >= 0" in capsys.readouterr().err
    mask = str(tmp_path / "clouds.tif")
    with pytest.raises(SystemExit) as exit_info:
        main(["series", *map(str, synthetic.dates[:3]), "--out", str(out), "--config", "cva",
              "--set", f"input.mask_t1={mask}", "--set", f"input.mask_t2={mask}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "names one file for every date" in err and "mask asset" in err
    assert not out.exists()


@pytest.mark.parametrize(("t1", "t2", "dates", "message"), [
    ("scl", None, ["a.json", "b.json"], r"input\.mask_t1='scl': one value for every pair"),
    ("scl", "SCL", ["a.json", "b.json"], r"one value for every pair"),
    ("masks/scl.tif", "masks/scl.tif", ["a.json", "b.json"], r"names one file for every date"),
    ("s3://b/scl.tif", "s3://b/scl.tif", ["a.json", "b.json"], r"names one file for every date"),
    ("scl", "scl", ["a.json", "b.tif"], r"date 'b\.tif' is no STAC Item"),
])
def test_series__masks_must_be_each_dates_own(t1: str | None, t2: str | None, dates: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_date_masks([Source.parse(d) for d in dates], InputConfig(mask_t1=t1, mask_t2=t2))
    check_date_masks([Source.parse(d) for d in dates], InputConfig())
    stac = [Source.parse("a.json"), Source.parse("https://x/b.json")]
    check_date_masks(stac, InputConfig(mask_t1="scl", mask_t2="scl"))


@pytest.mark.cluster
def test_series__a_pair_of_another_config_needs_overwrite(synthetic: SyntheticSeries, tmp_path: Path,
                                                          dask_cluster) -> None:  # noqa: ANN001
    out = tmp_path / "series"
    dates = [str(p) for p in synthetic.dates[:3]]
    _series([*dates, "--out", str(out)], dask_cluster.address)
    args = ["series", *dates, "--out", str(out), "--config", "cva", *sum((["--set", s] for s in BLOCKS), []),
            "--set", "model.threshold=0.4", "--scheduler", dask_cluster.address, "--no-progress"]
    with pytest.raises(OutputExistsError, match=r"pair '\d+T\d+_\d+T\d+' of series 'series'.*--overwrite"):
        run_series(dates, out, load_config("cva", [*BLOCKS, "model.threshold=0.4"]), scheduler=dask_cluster.address)
    result = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert [p["mode"] for p in json.loads(result.output)["pairs"]] == ["overwrite", "overwrite"]
    # persistence is no part of a pair: changing it reuses every pair and remakes the series products
    again = _series([*dates, "--out", str(out), "--set", "model.threshold=0.4", "--persistence", "0"],
                    dask_cluster.address)
    assert again["computed"] == [] and json.loads((out / "series.json").read_text())["persistence"] == 0
    # a pair that lost a product is resumed as --resume does (its verified blocks kept), the other reused
    damaged = out / "pairs" / again["pairs"][1]["name"]
    (damaged / "change_prob.tif").unlink()
    fixed = _series([*dates, "--out", str(out), "--set", "model.threshold=0.4"], dask_cluster.address)
    assert [p["mode"] for p in fixed["pairs"]] == ["skip", "resume"] and (damaged / "change_prob.tif").exists()
    assert json.loads((damaged / "run.json").read_text())["blocks"]["reused"] == 4


def test_plan_series__a_date_off_the_first_grid_needs_against_first(synthetic: SyntheticSeries,
                                                                      tmp_path: Path) -> None:
    from s2c_batch.pipeline.inputs.source import Source
    from s2c_batch.pipeline.output.folder import FolderLocation
    from s2c_batch.pipeline.series.runner import SeriesSpec, plan_series

    with rasterio.open(synthetic.dates[1]) as src:  # date 1 again, one pixel east
        data, profile, tags = src.read(), src.profile, src.tags()
    profile["transform"] = profile["transform"] * rasterio.Affine.translation(1, 0)
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    dates = (Source(str(synthetic.dates[0])), Source(str(shifted)), Source(str(synthetic.dates[2])))
    cfg = load_config("cva", [*BLOCKS, "input.align=reproject"])
    with pytest.raises(InputError, match=r"date '.*shifted\.tif' is not on the grid of the first date.*against first"):
        plan_series(SeriesSpec("s", dates, FolderLocation(tmp_path / "s"), cfg))
    first = load_config("cva", [*BLOCKS, "input.align=reproject", "series.against=first"])
    plan = plan_series(SeriesSpec("s", dates, FolderLocation(tmp_path / "s"), first))
    assert plan.modes == ("fresh", "fresh") and plan.grid.transform[2] == 440000.0
    assert not (tmp_path / "s").exists()
