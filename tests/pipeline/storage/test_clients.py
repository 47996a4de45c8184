"""The registry of object-store schemes, and what --out accepts from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.locate import OUT_SCHEMES, as_location, open_location
from s2c_batch.pipeline.output.objects import ObjectLocation
from s2c_batch.pipeline.storage.clients import CLIENTS


def test_clients__each_scheme_names_its_service_and_settings() -> None:
    assert OUT_SCHEMES == ("s3", "gs")
    storage = StorageConfig(endpoint="http://127.0.0.1:9000", gs_endpoint="http://127.0.0.1:4443", allow_http=True)
    assert CLIENTS["s3"].endpoint(storage) == "http://127.0.0.1:9000"
    assert CLIENTS["gs"].endpoint(storage) == "http://127.0.0.1:4443"
    assert "AWS_ACCESS_KEY_ID" in CLIENTS["s3"].credentials and "GOOGLE" in CLIENTS["gs"].credentials
    assert CLIENTS["gs"].failure(FileNotFoundError("gone")) == "bucket"


def test_open_location__a_folder_a_prefix_or_a_refusal(tmp_path: Path) -> None:
    assert open_location(tmp_path) == FolderLocation(tmp_path) == as_location(str(tmp_path))
    prefix = open_location("gs://bkt/a/b", StorageConfig())
    assert isinstance(prefix, ObjectLocation) and (prefix.scheme, prefix.bucket, prefix.prefix) == ("gs", "bkt", "a/b")
    assert open_location(prefix) is prefix and prefix.name == "b" and prefix.child("c").url == "gs://bkt/a/b/c"
    with pytest.raises(OutputError, match=r"'az://c/p': outputs can go to a local folder or to s3://, gs:// URLs"):
        open_location("az://c/p")
    with pytest.raises(OutputError, match=r"names no bucket; give s3://bucket/prefix"):
        open_location("s3:///p")


def test_location__both_kinds_name_and_place_files_alike(tmp_path: Path) -> None:
    folder = FolderLocation(tmp_path / "run")
    prefix = ObjectLocation("bkt", "night/run")
    assert (folder.name, prefix.name) == ("run", "run")
    assert folder.href("change_mask.tif") == tmp_path / "run" / "change_mask.tif"
    assert prefix.href("change_mask.tif") == "s3://bkt/night/run/change_mask.tif" and prefix.href() == prefix.url
    assert folder.storage is None and prefix.storage == StorageConfig()
    folder.ensure()
    with folder.staged("quicklook.png", what="quicklook") as tmp:
        tmp.write_bytes(b"png")
    assert folder.read("quicklook.png") == b"png" and not list((tmp_path / "run").glob(".*tmp"))
