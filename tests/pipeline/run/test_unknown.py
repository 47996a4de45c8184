"""The third state: a pixel one date did not observe is unknown in every product, not "no change"."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio.features
import xarray as xr

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import TRANSFORM, make_pair, read_band, write_masked_tif, write_tif

SMALL = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128", "tiling.chunk_size=128"]


def _masked_pair(tmp: Path, h: int, w: int) -> tuple[Path, Path, Path, np.ndarray]:
    """t1 with a collar in its internal mask band, t2 with clouds flagged by an external 0/1 mask.

    Returns:
        t1, t2, t2's mask, and where both dates were observed.
    """
    (tmp / "src").mkdir()
    a, b = make_pair(tmp / "src", h, w, seed=21)
    with rasterio.open(a) as s1, rasterio.open(b) as s2:
        d1, d2 = s1.read(), s2.read()
    collar = np.ones((h, w), bool)
    collar[:17], collar[:, -23:] = False, False
    clouds = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    clouds[(yy - 150) ** 2 + (xx - 90) ** 2 < 45 ** 2] = 1
    d2[:, clouds == 1] = 250  # bright cloud tops: change to every comparator, were they counted
    t1 = write_masked_tif(tmp / "t1.tif", d1, collar, kind="internal", jpeg=True)
    t2 = write_tif(tmp / "t2.tif", d2)
    mask = write_tif(tmp / "clouds.tif", clouds[None])
    return t1, t2, mask, collar & (clouds == 0)


@pytest.mark.cluster
def test_run__unknown_in_every_product_polygons_and_records(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    t1, t2, mask, observed = _masked_pair(tmp_path, 300, 260)
    out = tmp_path / "out"
    cfg = load_config("tiny", [*SMALL, f"input.mask_t2={mask}"])
    run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
    bands = {n: read_band(out / f"{n}.tif") for n in ("change_prob", "change_mask", "class_t1", "class_t2")}
    for name, arr in bands.items():
        np.testing.assert_array_equal(arr == 255, ~observed, err_msg=f"{name}: unknown is not 255")
    assert set(np.unique(bands["change_mask"][observed])) <= {0, 1}
    # the Zarr store as a user opens it (CF): unknown is the fill value, NaN once decoded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(out / "change.zarr")
        raw = xr.open_zarr(out / "change.zarr", mask_and_scale=False)
    for name, arr in bands.items():
        decoded = ds[name].values
        np.testing.assert_array_equal(np.isnan(decoded), ~observed, err_msg=f"{name}: unknown is not NaN")
        np.testing.assert_array_equal(raw[name].values, arr)
        assert ds[name].attrs["comment"] == store.UNKNOWN_COMMENT and "255 = unknown" in ds[name].attrs["long_name"]
    np.testing.assert_allclose(ds["change_prob"].values[observed], bands["change_prob"][observed] / 254, rtol=1e-6)
    assert set(np.unique(ds["change_mask"].values[observed])) <= {0.0, 1.0}
    # polygons never span unknown pixels: burnt back onto the grid they cover changed pixels only
    frame = gpd.read_parquet(out / "changes.parquet")
    burnt = rasterio.features.rasterize(((g, 1) for g in frame.geometry), out_shape=observed.shape,
                                        transform=TRANSFORM, fill=0, dtype="uint8")
    assert frame["pixels"].sum() == int((bands["change_mask"] == 1).sum())
    assert not (burnt.astype(bool) & ~observed).any()
    # run.json, the STAC item: observed and unknown area (0.5 m pixels: 0.25 m2 each)
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["mask_t2"]["rule"]["name"] == "nonzero" and "mask_t1" not in run["inputs"]
    record = run["coverage"]
    n_unknown = int((~observed).sum())
    assert record["unknown_pixels"] == n_unknown and record["observed_pixels"] == int(observed.sum())
    assert record["unknown_area_m2"] == pytest.approx(n_unknown * 0.25)
    assert record["observed_area_m2"] == pytest.approx(observed.sum() * 0.25)
    assert record["unknown_pct"] == pytest.approx(100 * n_unknown / observed.size, abs=1e-3)
    props = pystac.Item.from_file(str(out / "stac-item.json")).properties
    assert props["s2c:unknown_area_m2"] == record["unknown_area_m2"]
    assert props["s2c:observed_pct"] == record["observed_pct"]


@pytest.mark.cluster
@pytest.mark.parametrize("sets", [["model.standardize=scene", "model.threshold=otsu"], ["model.comparator=irmad"]],
                         ids=["cva-standardised-otsu", "irmad"])
def test_run__fitted_statistics_and_otsu_see_observed_pixels_only(tmp_path: Path, dask_cluster,  # noqa: ANN001
                                                                  sets: list[str]) -> None:
    """What lies under a mask changes nothing: clouds painted in or not, the products and fit are the same."""
    t1, cloudy, mask, observed = _masked_pair(tmp_path, 300, 260)
    clear = tmp_path / "clear.tif"
    with rasterio.open(tmp_path / "src" / "t2.tif") as src:
        write_tif(clear, src.read())
    runs = {}
    for name, t2 in (("cloudy", cloudy), ("clear", clear)):
        cfg = load_config("cva", [*SMALL, *sets, f"input.mask_t2={mask}"])
        run_change_detection(t1, t2, tmp_path / name, cfg, scheduler=dask_cluster.address, progress=False)
        runs[name] = json.loads((tmp_path / name / "run.json").read_text())
    assert runs["cloudy"]["fit"] == runs["clear"]["fit"] and runs["cloudy"]["fit"] is not None
    assert runs["cloudy"]["threshold"] == runs["clear"]["threshold"]
    if "model.threshold=otsu" in sets:
        assert runs["cloudy"]["threshold"]["valid_pixels"] == int(observed.sum())
    for product in ("change_prob", "change_mask"):
        np.testing.assert_array_equal(read_band(tmp_path / "cloudy" / f"{product}.tif"),
                                      read_band(tmp_path / "clear" / f"{product}.tif"))
    # and without the mask the clouds are change and move the statistics
    cfg = load_config("cva", [*SMALL, *sets])
    run_change_detection(t1, cloudy, tmp_path / "unmasked", cfg, scheduler=dask_cluster.address, progress=False)
    unmasked = read_band(tmp_path / "unmasked" / "change_mask.tif")
    with rasterio.open(mask) as src:
        cloud = src.read(1) == 1
    assert unmasked[cloud & (unmasked != 255)].mean() > 0.5, "unmasked clouds should read as change"


@pytest.mark.cluster
def test_compare__every_comparator_sees_the_masks(tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    from s2c_batch.pipeline.batch.compare import comparator_configs, run_comparison
    from s2c_batch.pipeline.run.context import RunOptions

    t1, t2, mask, observed = _masked_pair(tmp_path, 300, 260)
    cfg = load_config("cva", [*SMALL, f"input.mask_t2={mask}"])
    result = run_comparison(t1, t2, tmp_path / "cmp", comparator_configs(cfg, ("cva", "pca_kmeans")),
                            options=RunOptions(scheduler=dask_cluster.address, progress=False))
    for row in result.rows:
        assert row.valid_pixels == int(observed.sum())
        assert row.unknown_pct == pytest.approx(100 * (~observed).mean(), abs=1e-3)
        np.testing.assert_array_equal(read_band(tmp_path / "cmp" / row.comparator / "change_mask.tif") == 255,
                                      ~observed)
