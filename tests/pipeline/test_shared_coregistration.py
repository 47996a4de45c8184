"""Real scenes from ../shared/data moved by known shifts: the QA finds them, ``coregister: global`` undoes them.

Two pairs (skipped when ../shared is absent):

- the real aerial orthophoto ``cogeo.tif`` (0.6 m, 1024 x 1024) against itself with 25
  patches of the same scene pasted elsewhere (real content, known truth) and sensor noise;
- the OSCD Rennes Sentinel-2 pair (10 m, B02 B03 B04 B08), two real dates with the
  dataset's change truth. Its dates are themselves ~0.1 px apart, which the QA measures
  on the pair as delivered: the truth of a moved t2 is that plus the shift applied.

t2 is moved by resampling (cubic spline): by (0.4, 1.7) px and by (3, -2) px, where t1's
pixel (r, c) shows up at t2's (r + dy, c + dx). F1 is scored on the observed pixels
(``change_mask`` 255 left out) with CVA on scene-standardised bands and Otsu's threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import read_oscd_city

COGEO = "rasterio_rasterio/tests/data/cogeo.tif"
SHIFTS = [(0.4, 1.7), (3.0, -2.0)]
CVA = ["model.standardize=scene", "model.threshold=otsu"]


def _tiles(side: int) -> list[str]:
    return [f"tiling.tile_size={side}", f"tiling.overlap={side // 4}", f"tiling.block_size={side}",
            f"tiling.chunk_size={side}", f"input.coreg_window={side}"]


def _write(path: Path, data: np.ndarray, profile: dict) -> Path:  # type: ignore[type-arg]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs=profile["crs"], transform=profile["transform"]) as dst:
        dst.write(data)
    return path


def _moved(data: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    out = ndimage.shift(data.astype(np.float64), (0, *shift), order=3, mode="nearest")
    info = np.iinfo(data.dtype)
    return np.clip(np.round(out), info.min, info.max).astype(data.dtype)


def _f1(out: Path, truth: np.ndarray) -> float:
    with rasterio.open(out / "change_mask.tif") as src:
        mask = src.read(1)
    seen = mask != 255
    pred, true = (mask == 1) & seen, truth & seen
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    return float(2 * tp / (2 * tp + fp + fn))


def _run(t1: Path, t2: Path, out: Path, scheduler: str, sets: list[str]) -> tuple[dict, Path]:  # type: ignore[type-arg]
    run_change_detection(t1, t2, out, load_config("cva", sets), scheduler=scheduler, progress=False)
    return json.loads((out / "run.json").read_text())["coregistration"], out


def _cogeo_pair(data: Path, tmp: Path) -> tuple[Path, np.ndarray, np.ndarray, dict]:  # type: ignore[type-arg]
    with rasterio.open(data / COGEO) as src:
        a, profile = src.read(), src.profile
    rng = np.random.default_rng(3)
    b, truth = a.astype(np.float64), np.zeros(a.shape[1:], bool)
    for _ in range(25):
        h, w = rng.integers(20, 70, 2)
        r, c, r2, c2 = rng.integers(0, 1024 - h), rng.integers(0, 1024 - w), rng.integers(0, 1024 - h), \
            rng.integers(0, 1024 - w)
        b[:, r : r + h, c : c + w] = a[:, r2 : r2 + h, c2 : c2 + w]
        truth[r : r + h, c : c + w] = True
    b = np.clip(np.round(b + rng.normal(0, 2, b.shape)), 0, 255).astype(np.uint8)
    return _write(tmp / "t1.tif", a, profile), b, truth, profile


def _rennes_pair(data: Path, tmp: Path) -> tuple[Path, np.ndarray, np.ndarray, dict]:  # type: ignore[type-arg]
    a, b, truth, geo = read_oscd_city(data, "rennes")
    return _write(tmp / "t1.tif", a, geo), b, truth, geo


@pytest.mark.cluster
@pytest.mark.parametrize("scene", ["cogeo", "rennes"])
def test_coregister__known_shifts_of_a_real_pair_are_measured_and_undone(
        scene: str, shared_data: Path, tmp_path: Path, dask_cluster) -> None:  # noqa: ANN001
    if scene == "cogeo":
        t1, b, truth, profile = _cogeo_pair(shared_data, tmp_path)
        sets = [*_tiles(256), *CVA]
    else:  # 10 m urban detail: cubic keeps it through the correction better than bilinear
        t1, b, truth, profile = _rennes_pair(shared_data, tmp_path)
        sets = [*_tiles(128), *CVA, "input.scale=10000", "input.resampling=cubic"]
    addr = dask_cluster.address
    qa, out = _run(t1, _write(tmp_path / "t2.tif", b, profile), tmp_path / "aligned", addr, sets)
    inherent = np.array(qa["median_shift_px"])  # the dates' own misregistration (0 for cogeo)
    f1_aligned = _f1(out, truth)
    figures = {"aligned": (list(inherent), round(f1_aligned, 4))}
    for shift in SHIFTS:
        t2 = _write(tmp_path / f"t2_{shift[0]}_{shift[1]}.tif", _moved(b, shift), profile)
        qa, out = _run(t1, t2, tmp_path / f"moved_{shift}", addr, sets)
        f1_moved = _f1(out, truth)
        measured = np.array(qa["median_shift_px"])
        fixed, out = _run(t1, t2, tmp_path / f"fixed_{shift}", addr, [*sets, "input.coregister=global"])
        f1_fixed = _f1(out, truth)
        figures[str(shift)] = (list(measured), round(f1_moved, 4), round(f1_fixed, 4))
        assert qa["above_max"] and qa["blocks_used"] >= qa["blocks_total"] * 0.75, qa
        assert np.abs(measured - inherent - shift).max() < 0.1, figures
        assert fixed["applied_shift_px"] == list(measured)
        assert f1_moved < f1_aligned - 0.03, figures  # the shift hurt
        assert abs(f1_fixed - f1_aligned) < 0.01, figures  # and the correction undid it
    print(scene, figures)
