"""Opening remote scenes on real servers of 127.0.0.1: s3:// on moto (and weed mini), http:// on a stdlib server.

Each failure is an input error (exit 3) raised before anything is written, naming the
URL and the fix. Every test uploads into its own bucket: GDAL remembers what it
learnt about a URL for the life of the process.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.identity import describe_input
from s2c_batch.pipeline.inputs.remote_errors import remote_failure
from s2c_batch.pipeline.inputs.scene import open_pair

from objectstore import S3Server, closed_port, http_server, upload
from testutils import make_pair

Capsys = pytest.CaptureFixture[str]
CFG = load_config("cva", ["storage.allow_http=true", "storage.max_retry=0"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("pair"), 96, 128, seed=3)


def _open(t1: str, t2: str, storage: StorageConfig | None = None) -> object:
    return open_pair(t1, t2, CFG.input, storage=storage or CFG.storage)


def test_open_pair__s3_urls_equal_the_local_files(aws_env: S3Server, files: tuple[Path, Path]) -> None:
    urls = upload(aws_env, {"in/t1.tif": files[0], "in/t2.tif": files[1]})
    remote = open_pair(urls["in/t1.tif"], urls["in/t2.tif"], CFG.input, storage=CFG.storage)
    local = open_pair(*files, CFG.input)
    assert remote.grid == local.grid
    assert remote.t1.path == urls["in/t1.tif"]
    assert remote.t1.storage is not None and remote.t1.storage.endpoint == aws_env.endpoint  # from AWS_ENDPOINT_URL
    assert aws_env.secret_key.encode() not in pickle.dumps(remote)  # what the read tasks carry to the scheduler


def test_describe_input__s3_object_is_url_etag_and_size_and_changes_when_replaced(
        aws_env: S3Server, files: tuple[Path, Path]) -> None:
    url = upload(aws_env, {"t1.tif": files[0]})["t1.tif"]
    storage = StorageConfig(endpoint=aws_env.endpoint, allow_http=True)
    first = describe_input(url, storage)
    assert first["path"] == url and first["size"] == files[0].stat().st_size and first["etag"]
    assert "mtime" not in first
    bucket, key = url.removeprefix("s3://").split("/", 1)
    aws_env.client().upload_file(str(files[1]), bucket, key)
    assert describe_input(url, storage)["etag"] != first["etag"]


def test_open_pair__missing_object_is_exit_3_naming_the_url(aws_env: S3Server, files: tuple[Path, Path]) -> None:
    urls = upload(aws_env, {"t2.tif": files[1]})
    missing = urls["t2.tif"].replace("t2.tif", "t1.tif")
    with pytest.raises(InputError, match=rf"t1 scene '{missing}' cannot be read: the object does not exist"
                                         r".*Fix: check the URL") as info:
        _open(missing, urls["t2.tif"])
    assert info.value.exit_code == 3


def test_open_pair__missing_bucket_is_exit_3(aws_env: S3Server, files: tuple[Path, Path]) -> None:
    urls = upload(aws_env, {"t1.tif": files[0]})
    with pytest.raises(InputError, match=r"t2 scene 's3://no-such-bucket-[0-9a-f]+/t2.tif' cannot be read: "
                                         r"the bucket does not exist.*check the bucket name"):
        _open(urls["t1.tif"], f"s3://no-such-bucket-{id(files):x}/t2.tif")


def test_open_pair__no_credentials_is_exit_3_saying_where_to_set_them(
        aws_env: S3Server, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    urls = upload(aws_env, {"t1.tif": files[0], "t2.tif": files[1]})
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/credentials either
    with pytest.raises(InputError, match=r"cannot be read: no credentials were found.*AWS_ACCESS_KEY_ID.*"
                                         r"every Dask worker.*storage.anonymous=true") as info:
        _open(urls["t1.tif"], urls["t2.tif"])
    assert info.value.exit_code == 3


def test_open_pair__unreachable_endpoint_is_exit_3_naming_the_endpoint_key(
        aws_env: S3Server, files: tuple[Path, Path]) -> None:
    storage = StorageConfig(endpoint=f"http://127.0.0.1:{closed_port()}", allow_http=True, max_retry=0)
    with pytest.raises(InputError, match=r"t1 scene 's3://scenes/t1.tif' cannot be read: the server cannot be "
                                         r"reached.*storage.endpoint \(or AWS_ENDPOINT_URL\)"):
        _open("s3://scenes/t1.tif", "s3://scenes/t2.tif", storage)


def test_open_pair__bad_secret_is_exit_3_on_a_server_that_checks_signatures(
        weed: S3Server, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    urls = upload(weed, {"t1.tif": files[0], "t2.tif": files[1]})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", weed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    monkeypatch.setenv("CPL_AWS_AUTODETECT_EC2", "NO")
    storage = StorageConfig(endpoint=weed.endpoint, allow_http=True, max_retry=0)
    with pytest.raises(InputError, match=r"t1 scene 's3://.*/t1.tif' cannot be read: the credentials were "
                                         r"rejected.*AWS_SECRET_ACCESS_KEY") as info:
        _open(urls["t1.tif"], urls["t2.tif"], storage)
    assert info.value.exit_code == 3
    assert "not-the-secret" not in str(info.value)


def test_open_pair__http_urls_with_range_support(files: tuple[Path, Path], tmp_path: Path) -> None:
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    with http_server(tmp_path) as base:
        pair = _open(f"{base}/{files[0].name}", f"{base}/{files[1].name}")
        identity = describe_input(f"{base}/{files[0].name}")
    assert pair.grid == open_pair(*files, CFG.input).grid  # type: ignore[attr-defined]
    assert identity["size"] == files[0].stat().st_size and identity["last_modified"]


def test_open_pair__http_server_without_range_support_is_exit_3(tmp_path: Path) -> None:
    make_pair(tmp_path, 300, 300, seed=5)  # GDAL takes a whole small file from the first answer
    with http_server(tmp_path, ranges=False) as base, pytest.raises(
            InputError, match=rf"t1 scene '{base}/t1.tif' cannot be read: the server does not support HTTP range "
                              r"requests.*download it and give the local path"):
        _open(f"{base}/t1.tif", f"{base}/t1.tif")


def test_open_pair__http_403_gets_advice_for_a_web_server_not_s3(tmp_path: Path) -> None:
    """A plain web server that refuses the file: nothing of S3 in the advice (no AWS credentials, no endpoint)."""
    with http_server(tmp_path, forbidden=True) as base, pytest.raises(InputError) as info:
        _open(f"{base}/t1.tif", f"{base}/t2.tif")
    message = str(info.value)
    assert info.value.exit_code == 3
    assert message.startswith(f"t1 scene '{base}/t1.tif' cannot be read: the web server refused the request")
    assert "403" in message and "signed URL" in message
    for s3 in ("AWS", "storage.endpoint", "storage.profile", "bucket"):
        assert s3 not in message, message


def test_remote_failure__the_same_refusal_gets_the_advice_of_each_scheme() -> None:
    """GDAL's words for a refused request, read from an s3://, a gs:// and an https:// input."""
    refused = RuntimeError("HTTP response code: 403")
    s3 = remote_failure("t1 scene", "s3://b/t1.tif", refused)
    gs = remote_failure("t1 scene", "gs://b/t1.tif", refused)
    web = remote_failure("t1 scene", "https://h/t1.tif?sig=x", refused)
    vsi = remote_failure("t1 scene", "/vsicurl/https://h/t1.tif", refused)
    assert s3 is not None and "AWS_ACCESS_KEY_ID" in str(s3)
    assert gs is not None and "GOOGLE_APPLICATION_CREDENTIALS" in str(gs) and "AWS" not in str(gs)
    for err in (web, vsi):
        assert err is not None and "the web server refused the request" in str(err)
        assert "AWS" not in str(err) and "GOOGLE" not in str(err)
    unreachable = remote_failure("t1 scene", "http://h:1/t1.tif", RuntimeError("Connection refused"))
    assert unreachable is not None and "storage.endpoint" not in str(unreachable)
    assert "the URL's host and port" in str(unreachable)


def test_plan__missing_http_object_is_exit_3(files: tuple[Path, Path], tmp_path: Path, capsys: Capsys) -> None:
    shutil.copy(files[1], tmp_path / "t2.tif")
    with http_server(tmp_path) as base:
        with pytest.raises(SystemExit) as info:
            main(["plan", f"{base}/t1.tif", f"{base}/t2.tif", "--config", "cva"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert f"t1 scene '{base}/t1.tif' cannot be read: the object does not exist" in err
