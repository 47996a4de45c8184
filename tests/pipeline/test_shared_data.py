"""Real imagery from ../shared/data end to end (skipped when it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.vrt import stack_bands
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import assert_equals_oracle, cva_oracle, read_band

OSCD = "ChenHongruixuan_ChangeDetectionRepository/Dataset/OSCD/Onera Satellite Change Detection dataset - Images"


def _oscd_pair(data: Path, city: str, tmp: Path) -> tuple[Path, Path]:
    root = data / OSCD / city
    paths = []
    for folder in ("imgs_1", "imgs_2"):
        files = [next((root / folder).glob(f"*_{b}.tif")) for b in ("B04", "B03", "B02")]
        paths.append(stack_bands(files, tmp / f"{city}_{folder}.vrt"))
    return paths[0], paths[1]


@pytest.mark.cluster
def test_run__rgb_byte_against_itself_has_no_change_and_keeps_nodata(
    shared_data: Path, tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    src = shared_data / "rasterio_rasterio/tests/data/RGB.byte.tif"
    out = tmp_path / "out"
    cfg = load_config("cva", ["tiling.block_size=512"])
    run_change_detection(src, src, out, cfg, scheduler=dask_cluster.address, progress=False)
    with rasterio.open(src) as s:
        nodata = (s.read() == 0).all(axis=0)
        crs, transform = s.crs, s.transform
    for name in ("change_prob", "change_mask"):
        got = read_band(out / f"{name}.tif")
        assert (got[nodata] == 255).all()
        assert (got[~nodata] == 0).all(), f"{name}: change found in an image compared with itself"
        with rasterio.open(out / f"{name}.tif") as s:
            assert s.crs == crs and s.transform == transform


@pytest.mark.cluster
def test_run__oscd_sentinel2_pair_via_stacked_vrt(shared_data: Path, tmp_path: Path,
                                                  dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = _oscd_pair(shared_data, "bercy", tmp_path)
    out = tmp_path / "out"
    cfg = load_config("cva", ["input.scale=10000", "tiling.tile_size=256", "tiling.overlap=64",
                              "tiling.block_size=256", "tiling.chunk_size=256", "model.threshold=0.1"])
    run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
    got = {name: read_band(out / f"{name}.tif") for name in ("change_prob", "change_mask")}
    assert got["change_prob"].shape == (395, 360)
    assert_equals_oracle(got, cva_oracle(t1, t2, scale=10000.0, threshold=0.1), threshold=0.1)
    with rasterio.open(t1) as a, rasterio.open(out / "change_prob.tif") as b:
        assert a.crs == b.crs and a.transform.almost_equals(b.transform)


def test_stack_bands__cli_and_mismatched_grids(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / OSCD / "bercy" / "imgs_1"
    b04, b05 = next(root.glob("*_B04.tif")), next(root.glob("*_B05.tif"))  # 10 m vs 20 m
    res = CliRunner().invoke(cli, ["stack", str(tmp_path / "x.vrt"), str(b04), str(b04)])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "x.vrt") as v:
        assert v.count == 2 and v.dtypes[0] == "uint16"
    with pytest.raises(InputError, match="is not on the grid of"):
        stack_bands([b04, b05], tmp_path / "bad.vrt")


def test_plan__cli_prints_json_without_reading_pixels(shared_data: Path) -> None:
    src = shared_data / "rasterio_rasterio/tests/data/RGB.byte.tif"
    res = CliRunner().invoke(cli, ["plan", str(src), str(src), "--config", "cva",
                                   "--set", "tiling.block_size=512"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert plan["blocks"] == 4 and plan["block_grid"] == [2, 2]
    assert plan["path"]["kind"] == "untiled" and plan["tiles"] == 0  # pointwise: whole blocks, no tiles
    assert plan["grid"]["crs"] == "EPSG:32618" and plan["bytes_read"] > 0
    assert plan["peak_memory_per_worker_bytes"] > 0
