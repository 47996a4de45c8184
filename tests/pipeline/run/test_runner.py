"""End to end: `s2c-batch run` with the cva comparator against the numpy oracle.

Most runs go to a real `dask scheduler` + 2 `dask worker` processes (the
``dask_cluster`` fixture); one starts its own LocalCluster as a user's run does.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from click.testing import CliRunner
from distributed import Client

from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import OutputExistsError
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.products.polygons import write_polygons
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import CRS, TRANSFORM, assert_equals_oracle, cva_oracle, make_pair, read_band

SMALL_TILES = ["tiling.tile_size=256", "tiling.overlap=64", "tiling.chunk_size=256"]


def _cfg(*extra: str):  # noqa: ANN202
    return load_config("cva", [*SMALL_TILES, "tiling.block_size=512", *extra])


def _assert_equals_oracle(out: Path, t1: Path, t2: Path, **kw: object) -> None:
    oracle = cva_oracle(t1, t2, **kw)  # type: ignore[arg-type]
    got = {name: read_band(out / f"{name}.tif") for name in ("change_prob", "change_mask")}
    assert_equals_oracle(got, oracle, threshold=float(kw.get("threshold", 0.5)))  # type: ignore[arg-type]
    for name, band in got.items():
        zarr_arr = store.open_products(out / "change.zarr")[name].values
        assert (zarr_arr == band).all()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("pair"), 1100, 1300, seed=1, nodata=0)


@pytest.mark.cluster
def test_run__cva_multi_block_equals_numpy_on_real_cluster(pair: tuple[Path, Path], tmp_path: Path,
                                                           dask_cluster) -> None:  # noqa: ANN001
    res = run_change_detection(*pair, tmp_path / "out", _cfg(), scheduler=dask_cluster.address,
                               progress=False)
    assert res.blocks == 9 and res.status == "complete"
    _assert_equals_oracle(tmp_path / "out", *pair)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "complete" and run["blocks"]["computed"] == 9
    assert run["config"]["tiling"]["block_size"] == 512
    assert {"open", "blocks", "cogs", "total"} <= set(run["timings_s"])
    # The run traced each block's polygons as soon as that block was written, while later
    # blocks were still running: the result equals tracing the finished store afresh.
    with Client(dask_cluster.address, timeout="20s") as client:
        again = write_polygons(client, tmp_path / "out" / "change.zarr", tmp_path / "again.parquet",
                               open_pair(*pair, _cfg().input).grid, block=512)
    during, after = gpd.read_parquet(tmp_path / "out" / "changes.parquet"), gpd.read_parquet(again)
    assert len(during) > 10 and during.drop(columns="geometry").equals(after.drop(columns="geometry"))
    assert during.geometry.geom_equals_exact(after.geometry, tolerance=0).all()


def test_run__cva_on_local_cluster_via_cli(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["run", str(pair[0]), str(pair[1]), "--out", str(out), "--config", "cva", "--no-progress",
            "--report", str(tmp_path / "report.html"),
            *sum((["--set", s] for s in [*SMALL_TILES, "tiling.block_size=512"]), [])]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["status"] == "complete"
    _assert_equals_oracle(out, *pair)
    assert "<html" in (tmp_path / "report.html").read_text()[:2000].lower()


@pytest.mark.cluster
def test_run__block_sizes_give_identical_products(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 2100, 2300, seed=3, nodata=0)
    outs = []
    for block in (512, 1024, 2048):
        out = tmp_path / f"out{block}"
        cfg = load_config("cva", [f"tiling.block_size={block}"])
        run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
        outs.append(out)
    for name in ("change_prob", "change_mask"):
        ref = read_band(outs[0] / f"{name}.tif")
        for other in outs[1:]:
            assert (read_band(other / f"{name}.tif") == ref).all(), f"{name} differs for {other.name}"
    _assert_equals_oracle(outs[0], t1, t2)


@pytest.mark.cluster
def test_run__scene_smaller_than_one_tile(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 90, 130, seed=4)
    run_change_detection(t1, t2, tmp_path / "out", load_config("cva"), scheduler=dask_cluster.address,
                         progress=False)
    _assert_equals_oracle(tmp_path / "out", t1, t2)
    assert read_band(tmp_path / "out" / "change_prob.tif").shape == (90, 130)


@pytest.mark.cluster
def test_run__nodata_in_either_input_is_255_everywhere(pair: tuple[Path, Path], tmp_path: Path,
                                                       dask_cluster) -> None:  # noqa: ANN001
    run_change_detection(*pair, tmp_path / "out", _cfg(), scheduler=dask_cluster.address, progress=False)
    with rasterio.open(pair[0]) as s1, rasterio.open(pair[1]) as s2:
        nodata = (s1.read() == 0).all(axis=0) | (s2.read() == 0).all(axis=0)
    assert nodata.any()
    for name in ("change_prob", "change_mask"):
        got = read_band(tmp_path / "out" / f"{name}.tif")
        assert (got[nodata] == 255).all() and (got[~nodata] != 255).all()


@pytest.mark.cluster
def test_run__products_are_cogs_with_overviews_and_input_georeferencing(
    pair: tuple[Path, Path], tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    out = tmp_path / "out"
    run_change_detection(*pair, out, _cfg(), scheduler=dask_cluster.address, progress=False)
    for name in ("change_prob", "change_mask"):
        path = out / f"{name}.tif"
        with rasterio.open(path) as src:
            assert src.crs.to_string() == CRS and src.transform == TRANSFORM
            assert src.nodata == 255 and src.overviews(1), "COG needs overviews"
            assert src.profile["tiled"] and src.tags()["S2C_BATCH_VERSION"]
            assert src.tags()["S2C_INPUTS"] == "t1.tif,t2.tif" and "S2C_CHECKPOINTS" in src.tags()
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert _is_cog(path)
    ds = store.open_products(out / "change.zarr")
    assert ds["change_prob"].rio.crs.to_string() == CRS
    assert ds["change_prob"].rio.transform() == TRANSFORM
    assert ds.rio.shape == (1100, 1300)
    assert ds["change_prob"].encoding["shards"] == (512, 512)
    assert not list(out.glob(".*.tmp.tif")), "temporary files left behind"


def _is_cog(path: Path) -> bool:
    """GDAL's own COG layout marker: IFDs before data, tiled, with the ghost header."""
    with open(path, "rb") as f:
        head = f.read(1024)
    return b"LAYOUT=IFDS_BEFORE_DATA" in head and b"BLOCK_ORDER=ROW_MAJOR" in head


@pytest.mark.cluster
def test_run__existing_output_refused_then_overwritten(pair: tuple[Path, Path], tmp_path: Path,
                                                       dask_cluster) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    run_change_detection(*pair, out, _cfg(), scheduler=dask_cluster.address, progress=False)
    with pytest.raises(OutputExistsError, match="already holds a run; pass --resume"):
        run_change_detection(*pair, out, _cfg(), scheduler=dask_cluster.address, progress=False)
    res = run_change_detection(*pair, out, _cfg("model.threshold=0.1"), scheduler=dask_cluster.address,
                               overwrite=True, progress=False)
    assert res.status == "complete"
    _assert_equals_oracle(out, *pair, threshold=0.1)


@pytest.mark.cluster
def test_run__resume_reuses_written_blocks(pair: tuple[Path, Path], tmp_path: Path,
                                           dask_cluster) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    run_change_detection(*pair, out, _cfg(), scheduler=dask_cluster.address, progress=False)
    # Forget three blocks, as if the run had died before writing them.
    ledger = out / ".s2c" / "blocks.done"
    lines = ledger.read_text().splitlines()
    ledger.write_text("\n".join(lines[:6]) + "\n")
    # Another cluster setting changes no pixel: the run is resumed, not refused.
    res = run_change_detection(*pair, out, _cfg("cluster.retries=5", "cluster.n_workers=3"),
                               scheduler=dask_cluster.address, resume=True, progress=False)
    assert res.blocks_reused == 6
    run = json.loads((out / "run.json").read_text())
    assert {k: run["blocks"][k] for k in ("total", "reused", "computed")} == {"total": 9, "reused": 6, "computed": 3}
    _assert_equals_oracle(out, *pair)
    with pytest.raises(OutputExistsError, match="another fingerprint"):
        run_change_detection(*pair, out, _cfg("model.threshold=0.2"), scheduler=dask_cluster.address,
                             resume=True, progress=False)


@pytest.mark.cluster
def test_run__bbox_limits_the_grid(pair: tuple[Path, Path], tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    x0, y0 = TRANSFORM.c + 100 * 0.5, TRANSFORM.f - 700 * 0.5
    bbox = (x0, y0, x0 + 300 * 0.5, y0 + 200 * 0.5)  # 300 cols x 200 rows, from row 500, col 100
    out = tmp_path / "out"
    run_change_detection(*pair, out, _cfg(), scheduler=dask_cluster.address, bbox=bbox, progress=False)
    got = read_band(out / "change_prob.tif")
    assert got.shape == (200, 300)
    full = cva_oracle(*pair)["change_prob"][500:700, 100:400]
    assert np.abs(got.astype(int) - full).max() <= 1
    with rasterio.open(out / "change_prob.tif") as src:
        assert src.transform.c == x0 and src.transform.f == y0 + 200 * 0.5


@pytest.mark.cluster
def test_run__cach_tiny_config_writes_every_product(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 300, 380, seed=8, nodata=0)
    out = tmp_path / "out"
    cfg = load_config("tiny")
    res = run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
    assert set(res.products) >= {"change_prob.tif", "change_mask.tif", "class_t1.tif", "class_t2.tif",
                                 "change.zarr"}
    bands = {n: read_band(out / f"{n}.tif") for n in ("change_prob", "change_mask", "class_t1", "class_t2")}
    nodata = bands["change_prob"] == 255
    assert nodata.any() and not nodata.all()
    for name, arr in bands.items():
        assert ((arr == 255) == nodata).all(), f"{name}: nodata differs from change_prob's"
        with rasterio.open(out / f"{name}.tif") as src:
            assert src.crs.to_string() == CRS and src.transform == TRANSFORM
    assert set(np.unique(bands["class_t1"][~nodata])) <= {0, 1, 2, 3}
    # change_mask = prob > threshold and (t1 or t2 is the target class 'building' = 3)
    prob = bands["change_prob"][~nodata] / 254.0
    target = (bands["class_t1"][~nodata] == 3) | (bands["class_t2"][~nodata] == 3)
    expected = (prob >= 0.5 - 1 / 254) & target
    mask = bands["change_mask"][~nodata] == 1
    assert (mask <= expected).all()
    ds = store.open_products(out / "change.zarr")
    assert set(ds.data_vars) == {"change_prob", "change_mask", "class_t1", "class_t2"}
    # A plain open decodes the class maps to the vocabulary's names (CF flag_values / flag_meanings).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(out / "change.zarr")
        for name in ("class_t1", "class_t2"):
            attrs, decoded = plain[name].attrs, plain[name].values
            assert attrs["flag_meanings"] == "background bareland water building"
            assert attrs["flag_values"] == [0, 1, 2, 3]
            meaning = dict(zip(attrs["flag_values"], attrs["flag_meanings"].split(), strict=True))
            names = np.array([meaning[int(v)] for v in decoded[~nodata]])
            np.testing.assert_array_equal(names, np.array(["background", "bareland", "water", "building"])[
                bands[name][~nodata]])
            assert np.isnan(decoded[nodata]).all()


def test_run__missing_checkpoint_is_exit_2_and_writes_nothing(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from s2c_batch.pipeline.errors import CheckpointError

    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=r"model\.backbone_checkpoint .*(not set|does not exist)"):
        run_change_detection(*pair, out, load_config("default"), progress=False)
    assert not out.exists()
