"""STAC Items: datetimes from the inputs, WGS84 footprint, projection fields, offline validation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import transform as warp_transform

from s2c_batch.pipeline.config import InputConfig
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.acquisition import acquisition_datetime, parse_datetime
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.products.stac import build_item, write_stac_item
from s2c_batch.pipeline.products.stac_schema import PROJECTION_SCHEMA, offline_validator, validate_item

from testutils import TRANSFORM, make_pair

RUN = {"version": "0.1.0", "fingerprint": "f" * 64, "config_hash": "c" * 64,
       "checkpoints": {"model.cach_checkpoint": "sha256:abc"},
       "config": {"model": {"comparator": "cva", "identifier": "none", "threshold": 0.5}}}
PRODUCTS = {"change_prob.tif": "x", "change_mask.tif": "x", "change.zarr": "x"}


def _stamp(path: Path, **tags: str) -> None:
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(**tags)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024:06:01 10:30:00", "2024-06-01T10:30:00+00:00"),
    ("2024-06-01T10:30:00Z", "2024-06-01T10:30:00+00:00"),
    ("2024-06-01T12:30:00+02:00", "2024-06-01T10:30:00+00:00"),
    ("2024-06-01", "2024-06-01T00:00:00+00:00"),
    ("20240601T103000", "2024-06-01T10:30:00+00:00"),
])
def test_parse_datetime__formats_to_utc(text: str, expected: str) -> None:
    assert parse_datetime(text).isoformat() == expected  # type: ignore[union-attr]


def test_parse_datetime__garbage_is_none() -> None:
    assert parse_datetime("not a date") is None and parse_datetime("  ") is None


def test_acquisition_datetime__tiff_tag_and_imagery_key(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 40, 50)
    _stamp(t1, TIFFTAG_DATETIME="2023:05:01 09:00:00")
    _stamp(t2, ACQUISITIONDATETIME="2024-05-03T09:15:00Z", TIFFTAG_DATETIME="2030:01:01 00:00:00")
    assert acquisition_datetime(t1) == datetime(2023, 5, 1, 9, 0, tzinfo=UTC)
    assert acquisition_datetime(t2) == datetime(2024, 5, 3, 9, 15, tzinfo=UTC)  # acquisition key wins


def test_build_item__both_dates_give_start_and_end(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 60, 80)
    _stamp(t1, TIFFTAG_DATETIME="2023:05:01 09:00:00")
    _stamp(t2, TIFFTAG_DATETIME="2024:05:03 09:15:00")
    pair = open_pair(t1, t2, InputConfig())
    item = build_item(tmp_path / "run-a", pair, RUN, PRODUCTS)
    validate_item(item)
    d = item.to_dict(include_self_link=False)
    props = d["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == ("2023-05-01T09:00:00Z", "2024-05-03T09:15:00Z")
    assert props["s2c:datetime_source"] == "inputs" and props["s2c:inputs"] == ["t1.tif", "t2.tif"]
    assert props["s2c:fingerprint"] == "f" * 64 and props["s2c:checkpoints"] == RUN["checkpoints"]
    assert props["proj:code"] == "EPSG:32631" and props["proj:shape"] == [60, 80]
    assert props["proj:transform"] == list(TRANSFORM)[:6]
    assert set(d["assets"]) == {"change_prob", "change_mask", "zarr"}
    assert d["assets"]["change_prob"]["href"] == "./change_prob.tif"
    assert d["assets"]["change_prob"]["type"] == pystac.MediaType.COG
    assert d["id"] == "run-a"


def test_build_item__geometry_and_bbox_in_wgs84(tmp_path: Path) -> None:
    pair = open_pair(*make_pair(tmp_path, 60, 80), InputConfig())
    item = build_item(tmp_path / "r", pair, RUN, PRODUCTS)
    west, south, east, north = item.bbox  # type: ignore[misc]
    (lon,), (lat,) = warp_transform("EPSG:32631", "EPSG:4326", [TRANSFORM.c + 20.0], [TRANSFORM.f - 15.0])
    assert west < lon < east and south < lat < north
    assert 2.9 < west < 3.1 and 45.0 < south < 45.2  # UTM 31N, 500 km easting, 5000 km northing
    ring = np.asarray(item.geometry["coordinates"][0])  # type: ignore[index]
    assert len(ring) > 5 and (ring[0] == ring[-1]).all()


def test_build_item__without_dates_falls_back_to_processing_time(tmp_path: Path) -> None:
    pair = open_pair(*make_pair(tmp_path, 30, 30), InputConfig())
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    d = build_item(tmp_path / "r", pair, RUN, PRODUCTS, now=now).to_dict(include_self_link=False)
    props = d["properties"]
    assert props["datetime"] == "2025-01-02T03:04:05Z" and "start_datetime" not in props
    assert props["s2c:datetime_source"] == "processing" and props["s2c:t1_datetime"] is None


def test_write_stac_item__valid_json_file_that_pystac_reads(tmp_path: Path) -> None:
    pair = open_pair(*make_pair(tmp_path, 30, 30), InputConfig())
    out = tmp_path / "run"
    out.mkdir()
    (out / "quicklook.png").write_bytes(b"png")
    path = write_stac_item(out, pair, RUN, PRODUCTS)
    item = pystac.Item.from_dict(json.loads(path.read_text()))
    assert "quicklook" in item.assets and item.assets["quicklook"].roles == ["overview"]
    assert validate_item(item)
    assert not list(out.glob(".*.tmp"))


def test_validate_item__bad_projection_field_is_an_output_error(tmp_path: Path) -> None:
    pair = open_pair(*make_pair(tmp_path, 30, 30), InputConfig())
    item = build_item(tmp_path / "r", pair, RUN, PRODUCTS)
    item.properties["proj:shape"] = [30]
    with pytest.raises(OutputError, match="STAC item 'r' is not valid"):
        validate_item(item)
    item.properties["proj:shape"] = [30, 30]
    item.bbox = [3.0, 45.0]  # a bbox needs 4 or 6 numbers: invalid core item
    with pytest.raises(OutputError, match="is not valid"):
        validate_item(item)


def test_validate_item__extension_without_local_schema_is_refused(tmp_path: Path) -> None:
    pair = open_pair(*make_pair(tmp_path, 30, 30), InputConfig())
    item = build_item(tmp_path / "r", pair, RUN, PRODUCTS)
    item.stac_extensions.append("https://stac-extensions.github.io/eo/v1.1.0/schema.json")
    with pytest.raises(OutputError, match="cannot be validated offline"):
        validate_item(item)


def test_offline_validator__never_fetches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_network(*args: object, **kwargs: object) -> str:
        raise AssertionError("tried to fetch a schema over the network")

    monkeypatch.setattr(pystac.StacIO, "read_text", no_network)
    monkeypatch.setattr(pystac.stac_io.DefaultStacIO, "read_text", no_network)
    pair = open_pair(*make_pair(tmp_path, 30, 30), InputConfig())
    item = build_item(tmp_path / "r", pair, RUN, PRODUCTS)
    uris = item.validate(validator=offline_validator())
    assert any("projection" in u for u in uris) and any("item.json" in u for u in uris)
    assert copy.deepcopy(PROJECTION_SCHEMA)["$id"] in uris
