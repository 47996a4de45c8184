"""Masks on real imagery from ../shared/data (skipped when it is absent).

- A masked orthophoto pair: the real aerial ``cogeo.tif`` (0.6 m, 1024 x 1024) delivered
  as JPEG-in-GeoTIFF with an internal mask band and no nodata value, each date with its
  own tilted footprint and a black collar around it (the collar moves between the dates),
  and dark new roofs planted in t2.
- Clouds on the OSCD Rennes Sentinel-2 pair (10 m, B02 B03 B04 B08, the dataset's change
  truth): bright clouds and their shadows planted in t2 with an SCL layer that flags them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import assert_equals_oracle, cva_oracle, read_band, read_oscd_city, write_masked_tif

COGEO = "rasterio_rasterio/tests/data/cogeo.tif"


def _footprint(shape: tuple[int, int], angle: float, offset: tuple[int, int]) -> np.ndarray:
    h, w = shape
    poly = affinity.rotate(Polygon([(120, 90), (w - 100, 90), (w - 100, h - 110), (120, h - 110)]), angle)
    return rasterize([(affinity.translate(poly, *offset), 1)], out_shape=shape, fill=0, dtype="uint8").astype(bool)


@pytest.mark.cluster
def test_run__masked_orthophotos_no_change_in_the_moving_collar(shared_data: Path, tmp_path: Path,
                                                                dask_cluster) -> None:  # noqa: ANN001
    with rasterio.open(shared_data / COGEO) as src:
        a, crs, transform = src.read(), src.crs, src.transform
    rng = np.random.default_rng(11)
    b = a.astype(np.float64) * 1.03 + 2  # another day's light
    roofs = np.zeros(a.shape[1:], bool)
    for _ in range(12):
        h, w = rng.integers(30, 80, 2)
        r, c = rng.integers(150, 800, 2)
        b[:, r : r + h, c : c + w] = rng.integers(0, 60)  # new dark roofs on the snow
        roofs[r : r + h, c : c + w] = True
    b = np.clip(b, 0, 255).astype(np.uint8)
    f1, f2 = _footprint(a.shape[1:], 4, (0, 0)), _footprint(a.shape[1:], -3, (40, -25))
    a[:, ~f1], b[:, ~f2] = 0, 0  # the black collars
    t1 = write_masked_tif(tmp_path / "t1.tif", a, f1, kind="internal", jpeg=True, crs=crs, transform=transform)
    t2 = write_masked_tif(tmp_path / "t2.tif", b, f2, kind="internal", jpeg=True, crs=crs, transform=transform)
    out = tmp_path / "out"
    run_change_detection(t1, t2, out, load_config("cva", ["tiling.block_size=512"]),
                         scheduler=dask_cluster.address, progress=False)
    mask, prob = read_band(out / "change_mask.tif"), read_band(out / "change_prob.tif")
    collar = ~(f1 & f2)
    assert not (mask[collar] == 1).any(), "change reported in the collar"
    assert (mask[collar] == 255).all() and (prob[collar] == 255).all(), "the collar is not unknown"
    assert not (mask[~collar] == 255).any()
    # inside the footprints, the whole-scene CVA of the decoded JPEG pixels, exactly
    oracle = cva_oracle(t1, t2)
    for name in ("change_prob", "change_mask"):
        oracle[name][collar] = 255
    assert_equals_oracle({"change_prob": prob, "change_mask": mask}, oracle)
    changed_inside = int((mask[~collar] == 1).sum())
    found = float((mask[roofs & ~collar] == 1).mean())  # CVA finds the roofs that are darker enough
    assert changed_inside > 0 and not (mask[~roofs & ~collar] == 1).any()  # only roofs changed
    coverage = json.loads((out / "run.json").read_text())["coverage"]
    assert coverage["unknown_pixels"] == int(collar.sum())
    print("orthophoto: collar", int(collar.sum()), "px unknown, 0 changed; changed inside", changed_inside,
          "roofs found", round(found, 4),
          "; unknown", coverage["unknown_pct"], "%", coverage["unknown_area_m2"], "m2")


def _write(path: Path, data: np.ndarray, profile: dict) -> Path:  # type: ignore[type-arg]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, **profile) as dst:
        dst.write(data)
    return path


def _f1(mask: np.ndarray, truth: np.ndarray, seen: np.ndarray) -> float:
    pred, true = (mask == 1) & seen, truth & seen
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return float(2 * tp / (2 * tp + fp + fn))


@pytest.mark.cluster
def test_run__clouds_in_t2_with_their_scl_layer_leave_f1_as_cloud_free(shared_data: Path, tmp_path: Path,
                                                                        dask_cluster) -> None:  # noqa: ANN001
    a, b, truth, profile = read_oscd_city(shared_data, "rennes")
    rng = np.random.default_rng(7)
    field = ndimage.gaussian_filter(rng.normal(size=truth.shape), 12)
    cloud = field > np.quantile(field, 0.85)
    shadow = np.roll(cloud, (9, -7), axis=(0, 1)) & ~cloud
    cloudy = b.copy()
    tops = np.array([4200, 4300, 4500, 5200])[:, None] + rng.normal(0, 150, (4, int(cloud.sum())))
    cloudy[:, cloud] = tops.astype(np.uint16)
    cloudy[:, shadow] = (cloudy[:, shadow] * 0.35).astype(np.uint16)
    scl = np.full(truth.shape, 4, np.uint8)  # vegetation
    scl[cloud], scl[shadow] = 9, 3  # cloud (high probability), cloud shadow
    t1, t2 = _write(tmp_path / "t1.tif", a, profile), _write(tmp_path / "t2.tif", b, profile)
    t2c, layer = _write(tmp_path / "t2c.tif", cloudy, profile), _write(tmp_path / "scl.tif", scl[None], profile)
    sets = ["input.scale=10000", "tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=128",
            "tiling.chunk_size=128", "input.coreg_window=128", "model.standardize=scene", "model.threshold=otsu"]
    runs = {"clear": (t2, sets), "cloudy": (t2c, sets),
            "masked": (t2c, [*sets, f"input.mask_t2={layer}", "input.mask_preset=s2_scl"])}
    masks = {}
    for name, (scene, run_sets) in runs.items():
        run_change_detection(t1, scene, tmp_path / name, load_config("cva", run_sets), scheduler=dask_cluster.address,
                             progress=False)
        masks[name] = read_band(tmp_path / name / "change_mask.tif")
    seen = masks["masked"] != 255
    np.testing.assert_array_equal(seen, ~(cloud | shadow))
    everywhere = np.ones(truth.shape, bool)
    f1 = {"clear": _f1(masks["clear"], truth, everywhere), "clear_on_observed": _f1(masks["clear"], truth, seen),
          "cloudy_unmasked": _f1(masks["cloudy"], truth, everywhere), "masked": _f1(masks["masked"], truth, seen)}
    assert abs(f1["masked"] - f1["clear_on_observed"]) < 0.01, f1
    assert f1["cloudy_unmasked"] < f1["clear"] - 0.2, f1  # unmasked clouds are change to CVA
    coverage = json.loads((tmp_path / "masked" / "run.json").read_text())["coverage"]
    assert coverage["unknown_pixels"] == int((cloud | shadow).sum()) and coverage["unknown_area_m2"] > 0
    print("clouds:", {k: round(v, 4) for k, v in f1.items()}, "unknown", coverage["unknown_pct"], "%",
          coverage["unknown_area_m2"], "m2")
