"""Source: an input's name classified once, where the command or the API receives it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from s2c_batch.pipeline.inputs.source import Source


@pytest.mark.parametrize(("text", "remote", "is_url", "gdal", "url_scheme"), [
    ("t1.tif", False, False, "t1.tif", ""),
    ("/data/t1.tif", False, False, "/data/t1.tif", ""),
    ("s3://b/dir/t1.tif", True, True, "/vsis3/b/dir/t1.tif", "s3"),
    ("gs://b/t1.tif", True, True, "/vsigs/b/t1.tif", "gs"),
    ("https://h:8443/a/t1.tif", True, True, "/vsicurl/https://h:8443/a/t1.tif", "https"),
    ("/vsis3/b/t1.tif", True, True, "/vsis3/b/t1.tif", "s3"),
    ("/vsizip/a.zip/t1.tif", True, True, "/vsizip/a.zip/t1.tif", ""),
    ("az://c/t1.tif", False, True, "az://c/t1.tif", ""),
])
def test_source__classified_once(text: str, remote: bool, is_url: bool, gdal: str, url_scheme: str) -> None:
    source = Source.parse(text)
    assert (source.remote, source.is_url, source.gdal_path, source.url_scheme) == (remote, is_url, gdal, url_scheme)
    assert str(source) == text


def test_source__parse_takes_paths_and_sources_and_pickles() -> None:
    source = Source.parse(Path("dir") / "t1.tif")
    assert source == Source("dir/t1.tif") and Source.parse(source) is source
    assert pickle.loads(pickle.dumps(source)) == source


def test_source__names_without_secrets() -> None:
    signed = Source("https://me:pw@h:8443/a/t1.tif?X-Amz-Signature=abc")
    assert signed.redacted == "https://h:8443/a/t1.tif" and signed.name == "t1.tif"
    assert Source("/vsis3/b/dir/t2.tif").url == "s3://b/dir/t2.tif"
    assert Source("/data/t2.tif").name == "t2.tif" and Source("/data/t2.tif").redacted == "/data/t2.tif"


@pytest.mark.parametrize(("text", "item"), [
    ("item.json", True), ("https://h/items/a.JSON?sig=1", True), ("s3://b/a.json", True), ("t1.tif", False),
    ("https://h/a.tif?f=x.json", False),
])
def test_source__stac_item_by_its_path(text: str, item: bool) -> None:
    assert Source(text).is_stac_item is item


def test_source__absolute_resolves_local_paths_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Source("t1.tif").absolute == str(tmp_path / "t1.tif")
    assert Source("s3://b/t1.tif").absolute == "s3://b/t1.tif"
