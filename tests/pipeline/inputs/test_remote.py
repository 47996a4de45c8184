"""URLs, GDAL paths, the ``storage`` section and the GDAL options it becomes (no server needed)."""

from __future__ import annotations

import pytest

from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.remote import gdal_options, resolve_storage
from s2c_batch.pipeline.inputs.source import as_url, gdal_path, input_name, is_remote, redact


@pytest.mark.parametrize(("path", "vsi"), [
    ("s3://b/dir/t1.tif", "/vsis3/b/dir/t1.tif"),
    ("gs://b/t1.tif", "/vsigs/b/t1.tif"),
    ("http://127.0.0.1:8000/t1.tif", "/vsicurl/http://127.0.0.1:8000/t1.tif"),
    ("https://h/a/t1.tif?x=1", "/vsicurl/https://h/a/t1.tif?x=1"),
    ("/vsis3/b/t1.tif", "/vsis3/b/t1.tif"),
])
def test_gdal_path__urls_become_vsi_paths_and_back(path: str, vsi: str) -> None:
    assert is_remote(path)
    assert gdal_path(path) == vsi
    assert as_url(vsi) == (path if not path.startswith("/vsi") else "s3://b/t1.tif")


@pytest.mark.parametrize("path", ["t1.tif", "/data/t1.tif", "C:/data/t1.tif", "./s3/t1.tif"])
def test_is_remote__local_paths_are_unchanged(path: str) -> None:
    assert not is_remote(path)
    assert gdal_path(path) == path


def test_redact__drops_password_and_query_but_keeps_the_object() -> None:
    assert redact("https://me:pw@h:8443/a/t1.tif?X-Amz-Signature=abc") == "https://h:8443/a/t1.tif"
    assert redact("/vsis3/b/t1.tif") == "s3://b/t1.tif"
    assert input_name("https://h/a/t1.tif?sig=1") == "t1.tif"
    assert input_name("/data/t2.tif") == "t2.tif"


def test_gdal_options__custom_endpoint_is_host_port_path_style_without_https() -> None:
    storage = StorageConfig(endpoint="http://127.0.0.1:9000", allow_http=True, region="eu-west-3")
    opts = gdal_options("s3://b/t1.tif", storage)
    assert opts["AWS_S3_ENDPOINT"] == "127.0.0.1:9000"
    assert opts["AWS_HTTPS"] == "NO"
    assert opts["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert opts["AWS_REGION"] == "eu-west-3"
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert opts["GDAL_HTTP_MAX_RETRY"] == "5" and opts["GDAL_HTTP_RETRY_DELAY"] == "0.5"
    assert "CPL_VSIL_CURL_ALLOWED_EXTENSIONS" not in opts
    assert gdal_options("s3://b/t1.tif", StorageConfig(endpoint="https://minio.example:9000"))["AWS_HTTPS"] == "YES"


def test_gdal_options__http_anonymous_profile_and_user_overrides() -> None:
    storage = StorageConfig(anonymous=True, profile="nightly", gdal_options=("VSI_CACHE=TRUE", "GDAL_HTTP_MAX_RETRY=1"))
    opts = gdal_options("https://h/scenes/t1.TIF?token=x", storage)
    assert opts["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] == ".TIF"
    assert opts["AWS_NO_SIGN_REQUEST"] == "YES" and opts["GS_NO_SIGN_REQUEST"] == "YES"
    assert opts["AWS_PROFILE"] == "nightly"
    assert opts["VSI_CACHE"] == "TRUE" and opts["GDAL_HTTP_MAX_RETRY"] == "1"
    assert "AWS_S3_ENDPOINT" not in opts


def test_gdal_options__local_file_with_default_storage_gets_none() -> None:
    """Local runs read exactly as before: no GDAL option is set around their reads."""
    assert gdal_options("/data/t1.tif", StorageConfig()) == {}
    assert gdal_options("/data/t1.tif", None) == {}


def test_resolve_storage__aws_endpoint_url_fills_an_unset_endpoint() -> None:
    env = {"AWS_ENDPOINT_URL": "https://s3.example:9000"}
    assert resolve_storage(StorageConfig(), env).endpoint == "https://s3.example:9000"
    own = StorageConfig(endpoint="https://other:1")
    assert resolve_storage(own, env).endpoint == "https://other:1"
    assert resolve_storage(StorageConfig(), {}).endpoint is None


def test_resolve_storage__plain_http_endpoint_needs_allow_http() -> None:
    with pytest.raises(ConfigError, match=r"plain http; set --set storage.allow_http=true"):
        resolve_storage(StorageConfig(), {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert resolve_storage(StorageConfig(allow_http=True), {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}).endpoint
    with pytest.raises(ConfigError, match=r"AWS_ENDPOINT_URL='127.0.0.1:9000': storage.endpoint must be a URL"):
        resolve_storage(StorageConfig(), {"AWS_ENDPOINT_URL": "127.0.0.1:9000"})


def test_resolve_storage__storage_emulator_host_fills_an_unset_gs_endpoint() -> None:
    """Google's variable names a host (http, as its clients take it) or a URL; the config's own value wins."""
    allow = StorageConfig(allow_http=True)
    assert resolve_storage(allow, {"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}).gs_endpoint == "http://127.0.0.1:4443"
    assert resolve_storage(allow, {"STORAGE_EMULATOR_HOST": "https://gcs.example"}).gs_endpoint == "https://gcs.example"
    own = StorageConfig(gs_endpoint="https://other:1")
    assert resolve_storage(own, {"STORAGE_EMULATOR_HOST": "https://gcs.example"}).gs_endpoint == "https://other:1"
    assert resolve_storage(StorageConfig(), {"AWS_ENDPOINT_URL": "https://s3.example"}).gs_endpoint is None
    with pytest.raises(ConfigError, match=r"gs:// endpoint 'http://127.0.0.1:4443' \(storage.gs_endpoint or "
                                          r"STORAGE_EMULATOR_HOST\) is plain http; set --set storage.allow_http=true"):
        resolve_storage(StorageConfig(), {"STORAGE_EMULATOR_HOST": "127.0.0.1:4443"})
    with pytest.raises(ConfigError, match=r"STORAGE_EMULATOR_HOST='http://h:1/x': storage.gs_endpoint must be a URL"):
        resolve_storage(StorageConfig(), {"STORAGE_EMULATOR_HOST": "http://h:1/x"})


def test_gdal_options__gs_endpoint_is_gdal_cpl_gs_endpoint() -> None:
    storage = StorageConfig(gs_endpoint="http://127.0.0.1:4443", allow_http=True, anonymous=True)
    opts = gdal_options("gs://b/t1.tif", storage)
    assert opts["CPL_GS_ENDPOINT"] == "http://127.0.0.1:4443/"  # GDAL appends bucket/key
    assert opts["GS_NO_SIGN_REQUEST"] == "YES"
    assert "AWS_S3_ENDPOINT" not in opts and "CPL_GS_ENDPOINT" not in gdal_options("gs://b/t1.tif", None)


def test_storage_config__keys_types_and_secrets_are_checked() -> None:
    cfg = load_config("cva", ["storage.endpoint=https://s3.example:9000", "storage.anonymous=true",
                              "storage.gdal_options=[VSI_CACHE=TRUE]"])
    assert cfg.storage == StorageConfig(endpoint="https://s3.example:9000", anonymous=True,
                                        gdal_options=("VSI_CACHE=TRUE",))
    assert cfg.to_dict()["storage"]["endpoint"] == "https://s3.example:9000"
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) storage.secret .*'endpoint', 'gs_endpoint'"):
        load_config("cva", ["storage.secret=x"])
    with pytest.raises(ConfigError, match=r"storage.endpoint must be a URL like https://host:port"):
        load_config("cva", ["storage.endpoint=s3.example"])
    with pytest.raises(ConfigError, match=r"storage.gs_endpoint must be a URL like https://host:port"):
        load_config("cva", ["storage.gs_endpoint=gcs.example"])
    with pytest.raises(ConfigError, match=r"must not hold AWS_SECRET_ACCESS_KEY: secrets never go into the config"):
        load_config("cva", ["storage.gdal_options=[AWS_SECRET_ACCESS_KEY=x]"])
    with pytest.raises(ConfigError, match=r"each option must be KEY=VALUE"):
        load_config("cva", ["storage.gdal_options=[VSI_CACHE]"])


def test_storage_config__does_not_change_the_products_hash() -> None:
    """How the inputs are reached changes no pixel: a run resumed through another endpoint keeps its blocks."""
    a = load_config("cva", [])
    b = load_config("cva", ["storage.endpoint=https://s3.example:9000", "storage.region=eu-west-3"])
    assert a.products_hash() == b.products_hash()
    assert a.hash() != b.hash()
