"""`s2c-batch batch`: three pairs on one real cluster, a summary, resumable reruns, failures isolated."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import pyarrow.parquet as pq
import pystac
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from s2c_batch.pipeline.batch.runs_file import load_runs_file
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.products.stac_schema import validate_item

from testutils import assert_same_products, make_pair, read_band

SMALL = ["tiling.tile_size=256", "tiling.overlap=64", "tiling.chunk_size=256", "tiling.block_size=256"]
SIZES = [(200, 300), (260, 240), (180, 330)]


def _region(root: Path, **run_extra: object) -> Path:
    """Three synthetic pairs and a RUNS.yaml with paths relative to it."""
    runs = []
    for i, (h, w) in enumerate(SIZES):
        scenes = root / "scenes" / f"tile{i}"
        scenes.mkdir(parents=True)
        make_pair(scenes, h, w, seed=10 + i, nodata=0)
        runs.append({"name": f"tile{i}", "t1": f"scenes/tile{i}/t1.tif", "t2": f"scenes/tile{i}/t2.tif",
                     "out": f"products/tile{i}", **run_extra})
    doc = {"defaults": {"config": "cva", "set": SMALL}, "runs": runs}
    path = root / "RUNS.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _batch(runs: Path, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    summary = runs.parent / "summary.json"
    result = CliRunner().invoke(cli, ["batch", str(runs), "--summary", str(summary), "--no-progress", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(summary.read_text()) if summary.exists() else {}, result.output


@pytest.mark.cluster
def test_batch__three_runs_complete_then_rerun_skips_them(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    runs = _region(tmp_path)
    code, summary, output = _batch(runs, "--scheduler", dask_cluster.address, "--max-concurrent", "3")
    assert code == 0, output
    assert summary["counts"] == {"complete": 3} and summary["exit_code"] == 0 and summary["failed"] == []
    assert json.loads(output[output.index("{"):])["counts"] == {"complete": 3}  # printed too
    for entry, (h, w) in zip(summary["runs"], SIZES, strict=True):
        out = tmp_path / "products" / entry["name"]
        assert entry["status"] == "complete" and entry["mode"] == "fresh" and entry["error"] is None
        mask = read_band(out / "change_mask.tif")
        assert entry["pixels"] == h * w and entry["valid_pixels"] == int((mask != 255).sum())
        assert entry["changed_pixels"] == int((mask == 1).sum())
        assert entry["changed_area_km2"] == pytest.approx(entry["changed_pixels"] * 0.25 / 1e6, abs=1e-6)
        assert entry["area_method"] == "planar"
        assert entry["unknown_pixels"] == int((mask == 255).sum()) > 0  # make_pair's nodata strip and square
        assert entry["unknown_area_m2"] == pytest.approx(entry["unknown_pixels"] * 0.25)
        assert entry["observed_area_m2"] == pytest.approx(entry["valid_pixels"] * 0.25)
        assert entry["observed_pct"] + entry["unknown_pct"] == pytest.approx(100)
        assert {"stac-item.json", "quicklook.png", "changes.parquet"} <= set(entry["products"])
        item = pystac.Item.from_file(str(out / "stac-item.json"))
        validate_item(item)
        fp = json.loads((out / "run.json").read_text())["fingerprint"]
        assert item.properties["s2c:fingerprint"] == fp
        meta = pq.read_schema(out / "changes.parquet").metadata
        assert json.loads(meta[b"s2c:provenance"])["fingerprint"] == fp and b"geo" in meta
        assert Image.open(out / "quicklook.png").text["s2c:fingerprint"] == fp
        assert gpd.read_parquet(out / "changes.parquet")["pixels"].sum() == entry["changed_pixels"]
    assert sum(r["changed_pixels"] for r in summary["runs"]) > 0
    stamps = {p: os.stat(p).st_mtime_ns for p in tmp_path.glob("products/*/run.json")}
    code, again, _ = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 0 and again["counts"] == {"skipped": 3}
    assert [r["changed_pixels"] for r in again["runs"]] == [r["changed_pixels"] for r in summary["runs"]]
    assert [r["unknown_area_m2"] for r in again["runs"]] == [r["unknown_area_m2"] for r in summary["runs"]]
    assert stamps == {p: os.stat(p).st_mtime_ns for p in stamps}, "a skipped run was rewritten"


@pytest.mark.cluster
def test_batch__corrupt_input_fails_only_its_run(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    runs = _region(tmp_path)
    bad = tmp_path / "scenes" / "tile1" / "t2.tif"
    bad.write_bytes(bad.read_bytes()[:300])
    code, summary, output = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 1
    assert summary["counts"] == {"complete": 2, "failed": 1} and summary["failed"] == ["tile1"]
    failed = summary["runs"][1]
    assert failed["status"] == "failed" and failed["exit_code"] == 3
    assert failed["error"]["type"] == "InputError" and "t2.tif" in failed["error"]["message"]
    assert "tile1" in output.splitlines()[-1]
    assert (tmp_path / "products" / "tile0" / "stac-item.json").exists()
    assert (tmp_path / "products" / "tile2" / "stac-item.json").exists()
    assert not (tmp_path / "products" / "tile1").exists()


@pytest.mark.cluster
def test_batch__partial_run_is_resumed_and_changed_config_needs_overwrite(tmp_path: Path,
                                                                          dask_cluster) -> None:  # noqa: ANN001
    runs = _region(tmp_path)
    assert _batch(runs, "--scheduler", dask_cluster.address)[0] == 0
    out = tmp_path / "products" / "tile0"
    # tile0 died mid-run: run.json says running and one block was never recorded
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "status": "running"}))
    ledger = out / ".s2c" / "blocks.done"
    ledger.write_text("\n".join(ledger.read_text().splitlines()[1:]) + "\n")
    (out / "change_prob.tif").unlink()
    code, summary, _ = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 0 and [r["mode"] for r in summary["runs"]] == ["resume", "skip", "skip"]
    assert json.loads((out / "run.json").read_text())["blocks"]["reused"] >= 1
    assert (out / "change_prob.tif").exists()
    # tile2 now asks for another threshold: refused without overwrite, replaced with it
    doc = yaml.safe_load(runs.read_text())
    doc["runs"][2]["set"] = {"model.threshold": 0.3}
    runs.write_text(yaml.safe_dump(doc))
    code, summary, _ = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 1 and summary["runs"][2]["exit_code"] == 4
    assert "overwrite: true" in summary["runs"][2]["error"]["message"]
    doc["runs"][2]["overwrite"] = True
    runs.write_text(yaml.safe_dump(doc))
    code, summary, _ = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 0 and summary["runs"][2]["mode"] == "overwrite"
    assert json.loads((tmp_path / "products" / "tile2" / "run.json").read_text())["config"]["model"]["threshold"] == 0.3


@pytest.mark.cluster
def test_batch__runs_stopped_or_damaged_are_resumed_next_time_like_clean_runs(
    tmp_path: Path, dask_cluster, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    from s2c_batch.pipeline.run import runner

    runs = _region(tmp_path)
    write_cogs = runner.write_cogs

    def stop_tile1(client: object, store: Path, out: Path, *args: object, **kwargs: object) -> dict[str, str]:
        if out.name == "tile1":
            raise RuntimeError("stopped by the test")
        return write_cogs(client, store, out, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as mp:
        mp.setattr(runner, "write_cogs", stop_tile1)
        code, summary, _ = _batch(runs, "--scheduler", dask_cluster.address)
    assert code == 1 and summary["failed"] == ["tile1"]
    products = tmp_path / "products"
    (products / "tile0" / "change_mask.tif").unlink()  # a product lost since: not skipped
    (products / "tile2" / "run.json").unlink()  # the record lost: the store's fingerprint says resume
    code, summary, _ = _batch(runs, "--scheduler", dask_cluster.address, "--max-concurrent", "3")
    assert code == 0 and [r["mode"] for r in summary["runs"]] == ["resume"] * 3
    # The same runs, clean, into other folders: the resumed products are theirs byte for byte.
    doc = yaml.safe_load(runs.read_text())
    for run in doc["runs"]:
        run.update(out=f"clean/{run['name']}")
    clean_runs = tmp_path / "CLEAN.yaml"
    clean_runs.write_text(yaml.safe_dump(doc))
    assert _batch(clean_runs, "--scheduler", dask_cluster.address, "--max-concurrent", "3")[0] == 0
    for i in range(len(SIZES)):
        run = json.loads((products / f"tile{i}" / "run.json").read_text())
        assert run["status"] == "complete" and run["blocks"]["computed"] == 0
        assert_same_products(products / f"tile{i}", tmp_path / "clean" / f"tile{i}")


def test_batch__local_cluster_and_performance_report(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    make_pair(root, 120, 150, seed=3)
    doc = {"defaults": {"config": "cva", "set": SMALL + ["output.polygons=false"]},
           "runs": [{"t1": "t1.tif", "t2": "t2.tif", "out": "out"}]}
    (root / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["batch", str(root / "RUNS.yaml"), "--report", str(root / "report.html"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "RUNS.summary.json").read_text())  # default summary path
    assert summary["runs"][0]["name"] == "out" and summary["runs"][0]["status"] == "complete"
    assert "Dask Performance Report" in (root / "report.html").read_text()
    assert not (root / "out" / "changes.parquet").exists() and (root / "out" / "quicklook.png").exists()


def test_load_runs_file__every_problem_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"defaults": {"config": "cva", "colour": "red"},
           "runs": [{"t1": "a.tif", "t2": "b.tif", "out": "x", "bogus": 1},
                    {"t1": "a.tif", "out": "y"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "x"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "w", "set": ["tiling.nope=3"]},
                    {"t1": "a.tif", "t2": "b.tif", "out": "z", "bbox": [3, 2, 1, 0]}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    expected = r"(?s)7 problem\(s\).*'colour'.*'bogus'.*\['t2'\].*tiling\.nope.*bbox.*same out"
    with pytest.raises(ConfigError, match=expected) as info:
        load_runs_file(tmp_path / "RUNS.yaml")
    assert str(tmp_path / "x") in str(info.value)
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(tmp_path / "RUNS.yaml")])
    assert exc.value.code == 2
    assert "7 problem(s)" in capsys.readouterr().err


def test_load_runs_file__relative_paths_and_mapping_overrides(tmp_path: Path) -> None:
    doc = {"defaults": {"config": "cva", "set": {"tiling.block_size": 1024}},
           "runs": [{"name": "n", "t1": "s/a.tif", "t2": "/abs/b.tif", "out": "o", "set": {"model.threshold": 0.25},
                     "bbox": "1,2,3,4"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    spec = load_runs_file(tmp_path / "RUNS.yaml").runs[0]
    assert spec.t1 == Source.parse(tmp_path / "s" / "a.tif") and spec.t2 == Source("/abs/b.tif")
    assert spec.out == FolderLocation(tmp_path / "o")
    assert spec.cfg.tiling.block_size == 1024 and spec.cfg.model.threshold == 0.25
    assert spec.bbox == (1.0, 2.0, 3.0, 4.0)


def test_load_runs_file__missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the runs file .*nope\.yaml"):
        load_runs_file(tmp_path / "nope.yaml")


def test_load_runs_file__masks_relative_to_the_file_asset_names_as_written(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "scl.tif").write_bytes(b"")
    doc = {"defaults": {"config": "cva", "set": {"input.mask_preset": "s2_scl"}},
           "runs": [{"t1": "a.json", "t2": "b.tif", "out": "o", "mask_t1": "SCL", "mask_t2": "m/scl.tif"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "p", "mask_t2": "s3://bucket/scl.tif"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "q", "mask_t1": 3}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"runs\[2\] \(q\): mask_t1 must be a mask raster's path or URL"):
        load_runs_file(tmp_path / "RUNS.yaml")
    doc["runs"].pop()
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    first, second = load_runs_file(tmp_path / "RUNS.yaml").runs
    assert first.cfg.input.mask_t1 == "SCL" and first.cfg.input.mask_t2 == str(tmp_path / "m" / "scl.tif")
    assert first.cfg.input.mask_preset == "s2_scl"
    assert second.cfg.input.mask_t1 is None and second.cfg.input.mask_t2 == "s3://bucket/scl.tif"
