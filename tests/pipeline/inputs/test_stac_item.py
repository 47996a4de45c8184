"""A STAC Item as T1/T2: its GeoTIFF asset is read (local file, http:// and s3:// items on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.scene import open_pair

from objectstore import S3Server, http_server, upload
from testutils import make_pair

Capsys = pytest.CaptureFixture[str]


def _item(path: Path, href: str, *, bands: int = 3) -> Path:
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": path.stem, "properties": {}, "geometry": None,
           "assets": {"thumbnail": {"href": "thumb.png", "type": "image/png"},
                      "metadata": {"href": "meta.xml", "type": "application/xml"},
                      "visual": {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                                 "eo:bands": [{"name": f"b{i}"} for i in range(bands)]}}}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return make_pair(tmp_path, 64, 80, seed=1)


def test_open_pair__local_items_read_their_geotiff_asset(pair: tuple[Path, Path], tmp_path: Path) -> None:
    i1, i2 = _item(tmp_path / "t1.json", "t1.tif"), _item(tmp_path / "t2.json", str(pair[1]))
    got = open_pair(i1, i2, load_config("cva").input)
    assert got.t1.path == str(pair[0].resolve()) and got.t2.path == str(pair[1])
    assert got.grid == open_pair(*pair, load_config("cva").input).grid


def test_open_pair__item_over_http_resolves_relative_hrefs_against_its_url(
        pair: tuple[Path, Path], tmp_path: Path) -> None:
    _item(tmp_path / "t1.json", "t1.tif")
    _item(tmp_path / "t2.json", "./t2.tif")
    with http_server(tmp_path) as base:
        got = open_pair(f"{base}/t1.json", f"{base}/t2.json", load_config("cva").input)
    assert (got.t1.path, got.t2.path) == (f"{base}/t1.tif", f"{base}/t2.tif")


def test_open_pair__s3_item_with_s3_asset(aws_env: S3Server, pair: tuple[Path, Path], tmp_path: Path) -> None:
    urls = upload(aws_env, {"t1.tif": pair[0], "t2.tif": pair[1]})
    bucket = urls["t1.tif"].removeprefix("s3://").split("/")[0]
    items = upload(aws_env, {"t1.json": _item(tmp_path / "t1.json", "t1.tif"),
                             "t2.json": _item(tmp_path / "t2.json", urls["t2.tif"])}, bucket=f"{bucket}-items")
    cfg = load_config("cva", ["storage.allow_http=true"])
    aws_env.client().upload_file(str(pair[0]), f"{bucket}-items", "t1.tif")  # a relative href: beside the item
    got = open_pair(items["t1.json"], items["t2.json"], cfg.input, storage=cfg.storage)
    assert (got.t1.path, got.t2.path) == (f"s3://{bucket}-items/t1.tif", urls["t2.tif"])


def test_open_pair__unknown_asset_lists_the_items_assets(pair: tuple[Path, Path], tmp_path: Path) -> None:
    item = _item(tmp_path / "t1.json", "t1.tif")
    cfg = load_config("cva", ["input.asset=B04"])
    with pytest.raises(InputError, match=r"t1 STAC Item '.*t1.json' has no asset 'B04'; its assets are thumbnail "
                                         r"\(image/png\), metadata \(application/xml\), visual \(image/tiff.*"
                                         r"set input.asset") as info:
        open_pair(item, pair[1], cfg.input)
    assert info.value.exit_code == 3


def test_open_pair__no_asset_with_the_bands_asked_for(pair: tuple[Path, Path], tmp_path: Path) -> None:
    item = _item(tmp_path / "t2.json", "t2.tif", bands=1)
    with pytest.raises(InputError, match=r"t2 STAC Item .* has no GeoTIFF/COG asset with bands \[1, 2, 3\]"):
        open_pair(pair[0], item, load_config("cva").input)


def test_plan__asset_chosen_by_input_asset(pair: tuple[Path, Path], tmp_path: Path, capsys: Capsys) -> None:
    doc = json.loads(_item(tmp_path / "t1.json", "missing.tif").read_text())
    doc["assets"]["data"] = {"href": "t1.tif"}  # no media type: a .tif href is enough
    (tmp_path / "t1.json").write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as info:
        main(["plan", str(tmp_path / "t1.json"), str(pair[1]), "--config", "cva", "--set", "input.asset=data"])
    assert info.value.code == 0
    assert json.loads(capsys.readouterr().out)
    assert load_config("cva", ["input.asset=data"]).products_hash() == load_config("cva").products_hash()
