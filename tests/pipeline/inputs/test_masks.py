"""Validity from every source GDAL knows: mask bands, alpha, external masks and their presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import ConfigError, InputError, SceneMismatchError
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.run.fingerprint import fingerprint

from objectstore import http_server
from testutils import TRANSFORM, write_masked_tif, write_tif

H, W = 96, 128


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(20, 230, size=(3, H, W)).astype(np.uint8)


def _collar(top: int, left: int) -> np.ndarray:
    mask = np.ones((H, W), bool)
    mask[:top] = False
    mask[:, :left] = False
    return mask


def _read(pair_source, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    reader.close_handles()
    return reader.read_window(pair_source, window or Window(0, 0, H, W))


@pytest.mark.parametrize(("kind", "jpeg"), [("internal", True), ("internal", False), ("sidecar", False),
                                           ("alpha", False)])
def test_read_window__the_files_mask_band_or_alpha_is_validity(tmp_path: Path, kind: str, jpeg: bool) -> None:
    m1, m2 = _collar(10, 7), _collar(3, 20)
    t1 = write_masked_tif(tmp_path / "t1.tif", _scene(1), m1, kind=kind, jpeg=jpeg)
    t2 = write_masked_tif(tmp_path / "t2.tif", _scene(2), m2, kind=kind, jpeg=jpeg)
    if kind == "sidecar":
        assert Path(f"{t1}.msk").is_file()
    pair = open_pair(t1, t2, load_config("cva").input)
    assert pair.t1.dataset_mask and pair.t2.dataset_mask
    assert (pair.t1.alpha == 4) == (kind == "alpha")
    data, valid = _read(pair.t1)
    np.testing.assert_array_equal(valid, m1)
    assert data.shape == (3, H, W) and (data[:, ~m1] == 0).all()
    # a window reaching past the scene: outside is invalid, the mask is read at the right place
    _, part = _read(pair.t2, Window(-5, 100, 20, 40))
    expected = np.zeros((20, 40), bool)
    expected[5:, :28] = m2[:15, 100:]
    np.testing.assert_array_equal(part, expected)


@pytest.mark.parametrize("kind", ["internal", "alpha"])
def test_read_window__warped_t2_carries_its_mask_band(tmp_path: Path, kind: str) -> None:
    m2 = _collar(12, 16)
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    shifted = TRANSFORM * Affine.translation(4, 0)  # t2's grid starts 4 columns east: a warp
    t2 = write_masked_tif(tmp_path / "t2.tif", _scene(2), m2, kind=kind, transform=shifted)
    pair = open_pair(t1, t2, load_config("cva", ["input.align=reproject", "input.resampling=nearest"]).input)
    assert pair.t2.warp is not None
    _, valid = _read(pair.t2)
    expected = np.zeros((H, W), bool)
    expected[:, 4:] = m2[:, : W - 4]  # t2's column c is output column c + 4
    np.testing.assert_array_equal(valid, expected)


def test_open_pair__alpha_band_is_never_an_image_band(tmp_path: Path) -> None:
    t1 = write_masked_tif(tmp_path / "t1.tif", _scene(1), _collar(2, 2), kind="alpha")
    with pytest.raises(InputError, match=r"holds band 4 of t1 .* its alpha band .*input.bands=\[1, 2, 3\]"):
        open_pair(t1, t1, load_config("cva", ["input.bands=[1,2,3,4]"]).input)


def _mask_file(path: Path, values: np.ndarray, *, nodata: float | None = None,
               transform: Affine = TRANSFORM) -> Path:
    return write_tif(path, values[None], nodata=nodata, transform=transform)


def test_external_mask__nonzero_values_and_its_nodata_are_not_observed(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    t2 = write_tif(tmp_path / "t2.tif", _scene(2))
    clouds = np.zeros((H, W), np.uint8)
    clouds[20:40, 30:70] = 1
    clouds[0:5] = 255  # the mask's own nodata: it knows nothing there
    mask = _mask_file(tmp_path / "clouds.tif", clouds, nodata=255)
    pair = open_pair(t1, t2, load_config("cva", [f"input.mask_t2={mask}"]).input)
    assert pair.t1.mask is None and pair.t2.mask is not None
    data, valid = _read(pair.t2)
    np.testing.assert_array_equal(valid, clouds == 0)
    assert (data[:, ~valid] == 0).all()
    # listed values only: 1 = cloud; 255 is still the mask's nodata
    pair = open_pair(t1, t2, load_config("cva", [f"input.mask_t2={mask}", "input.mask_values=[1]"]).input)
    np.testing.assert_array_equal(_read(pair.t2)[1], clouds == 0)


def test_external_mask__an_http_url_is_read_like_a_file(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    clouds = np.zeros((H, W), np.uint8)
    clouds[10:30, 40:90] = 1
    (tmp_path / "served").mkdir()
    _mask_file(tmp_path / "served" / "clouds.tif", clouds)
    with http_server(tmp_path / "served") as base:
        pair = open_pair(t1, t1, load_config("cva", [f"input.mask_t1={base}/clouds.tif"]).input)
        assert pair.t1.mask is not None and pair.t1.mask.path == f"{base}/clouds.tif"
        np.testing.assert_array_equal(_read(pair.t1)[1], clouds == 0)  # window by window, over range requests
        with pytest.raises(InputError, match=rf"input.mask_t1 '{base}/gone.tif' cannot be read: the object does "
                                             r"not exist") as err:
            open_pair(t1, t1, load_config("cva", [f"input.mask_t1={base}/gone.tif"]).input)
        assert err.value.exit_code == 3
    reader.close_handles()


def test_external_mask__s2_scl_and_landsat_qa_pixel_presets(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    scl = np.random.default_rng(0).integers(0, 12, size=(H, W)).astype(np.uint8)
    mask = _mask_file(tmp_path / "scl.tif", scl)
    pair = open_pair(t1, t1, load_config("cva", [f"input.mask_t1={mask}", "input.mask_preset=s2_scl"]).input)
    valid = _read(pair.t1)[1]
    np.testing.assert_array_equal(valid, np.isin(scl, [2, 4, 5, 6, 7]))
    qa = np.random.default_rng(1).integers(0, 1 << 16, size=(H, W)).astype(np.uint16)
    qa[:10] = 1 << 6  # clear
    path = _mask_file(tmp_path / "qa.tif", qa)
    pair = open_pair(t1, t1, load_config("cva", [f"input.mask_t1={path}", "input.mask_preset=landsat_qa_pixel"]).input)
    valid = _read(pair.t1)[1]
    np.testing.assert_array_equal(valid, (qa & 0b111111) == 0)
    assert valid[:10].all()


def test_external_mask__other_grid_refused_when_strict_and_warped_when_reproject(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    coarse = np.zeros((H // 2, W // 2), np.uint8)
    coarse[10:20, 8:16] = 9  # cloud, high probability
    transform = TRANSFORM * Affine.scale(2)  # a 20 m SCL under 10 m bands
    mask = _mask_file(tmp_path / "scl20.tif", coarse, transform=transform)
    sets = [f"input.mask_t1={mask}", "input.mask_preset=s2_scl"]
    with pytest.raises(SceneMismatchError, match=r"input.mask_t1 .*scl20.tif.* not on the grid of the t1 scene: "
                                                 r"shape .*input.align=reproject") as err:
        open_pair(t1, t1, load_config("cva", sets).input)
    assert err.value.exit_code == 3
    coarse[:] = np.where(coarse == 9, 9, 4)
    _mask_file(mask, coarse, transform=transform)
    pair = open_pair(t1, t1, load_config("cva", [*sets, "input.align=reproject"]).input)
    assert pair.t1.mask is not None and pair.t1.mask.warp is not None and pair.t1.mask.warp.resampling == "nearest"
    valid = _read(pair.t1)[1]
    expected = np.ones((H, W), bool)
    expected[20:40, 16:32] = False
    np.testing.assert_array_equal(valid, expected)


def test_external_mask__errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    with pytest.raises(InputError, match=r"input.mask_t2 .*nope.tif' does not exist; check the path") as err:
        open_pair(t1, t1, load_config("cva", [f"input.mask_t2={tmp_path / 'nope.tif'}"]).input)
    assert err.value.exit_code == 3
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"input.mask_t1 .*bad.tif' cannot be read as a mask raster") as err:
        open_pair(t1, t1, load_config("cva", [f"input.mask_t1={tmp_path / 'bad.tif'}"]).input)
    assert err.value.exit_code == 3
    with pytest.raises(ConfigError, match=r"input.mask_values .* and input.mask_preset .*set only one") as cerr:
        load_config("cva", ["input.mask_values=[1]", "input.mask_preset=s2_scl"])
    assert cerr.value.exit_code == 2
    with pytest.raises(ConfigError, match=r"input.mask_preset must be one of \['s2_scl', 'landsat_qa_pixel'\]"):
        load_config("cva", ["input.mask_preset=fmask"])
    qa = _mask_file(tmp_path / "f.tif", np.zeros((H, W), np.float32))
    with pytest.raises(InputError, match=r"is float32, but input.mask_preset 'landsat_qa_pixel' tests bits"):
        open_pair(t1, t1, load_config("cva", [f"input.mask_t1={qa}", "input.mask_preset=landsat_qa_pixel"]).input)


def test_external_mask__names_an_asset_of_a_stac_item(tmp_path: Path) -> None:
    scene = write_tif(tmp_path / "t1.tif", _scene(1))
    scl = np.full((H, W), 4, np.uint8)
    scl[:8] = 8
    _mask_file(tmp_path / "scl.tif", scl)
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "x", "geometry": None, "properties": {},
            "assets": {"visual": {"href": "t1.tif", "type": "image/tiff; application=geotiff"},
                       "SCL": {"href": "./scl.tif", "type": "image/tiff; application=geotiff"}}}
    (tmp_path / "item.json").write_text(json.dumps(item))
    pair = open_pair(tmp_path / "item.json", scene,
                     load_config("cva", ["input.mask_t1=SCL", "input.mask_preset=s2_scl"]).input)
    assert pair.t1.mask is not None and pair.t1.mask.path == str((tmp_path / "scl.tif").resolve())
    np.testing.assert_array_equal(_read(pair.t1)[1], scl != 8)
    with pytest.raises(InputError, match=r"input.mask_t1 'CLOUDS' is neither a file nor an asset of t1's STAC "
                                         r"Item .*\(its assets: SCL, visual\)"):
        open_pair(tmp_path / "item.json", scene, load_config("cva", ["input.mask_t1=CLOUDS"]).input)


def test_fingerprint__holds_the_masks_identity(tmp_path: Path) -> None:
    t1 = write_tif(tmp_path / "t1.tif", _scene(1))
    mask = _mask_file(tmp_path / "m.tif", np.zeros((H, W), np.uint8))
    cfg = load_config("cva", [f"input.mask_t1={mask}"])
    before = fingerprint(open_pair(t1, t1, cfg.input), cfg, {})
    assert before != fingerprint(open_pair(t1, t1, load_config("cva").input), load_config("cva"), {})
    _mask_file(mask, np.ones((H, W), np.uint8))
    with rasterio.open(mask, "r+") as dst:  # another mtime and content: another run
        dst.update_tags(edited="yes")
    import os
    os.utime(mask, (1, 1))
    assert fingerprint(open_pair(t1, t1, cfg.input), cfg, {}) != before
