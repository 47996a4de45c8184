"""The output location on a real S3 server (moto_server on 127.0.0.1): objects, lock, ledger, errors."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError, OutputExistsError, OutputLockedError
from s2c_batch.pipeline.output import layout, lock
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.objects import ObjectLocation

from objectstore import S3Server, closed_port


def _bucket(server: S3Server) -> str:
    name = f"out-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def location(aws_env: S3Server) -> ObjectLocation:
    """A fresh prefix of a fresh bucket on the moto server."""
    loc = open_location(f"s3://{_bucket(aws_env)}/runs/a", StorageConfig(allow_http=True, max_retry=0))
    assert isinstance(loc, ObjectLocation)
    return loc


def test_open_location__local_and_s3(aws_env: S3Server, tmp_path: Path) -> None:
    assert open_location(tmp_path) == FolderLocation(tmp_path)
    loc = open_location("s3://bkt/a/b/", StorageConfig(allow_http=True))
    assert isinstance(loc, ObjectLocation)
    assert (loc.bucket, loc.prefix, loc.url) == ("bkt", "a/b", "s3://bkt/a/b")
    assert loc.storage.endpoint == aws_env.endpoint  # AWS_ENDPOINT_URL, resolved on the client
    assert "secret" not in repr(loc).lower()


@pytest.mark.parametrize("url", ["az://b/p", "https://h/p", "/vsis3/b/p", "s3:///p", "gs:///p"])
def test_open_location__unsupported(url: str) -> None:
    with pytest.raises(OutputError, match="give (s3|gs)://bucket/prefix"):
        open_location(url)


def _roundtrip(loc: Location, tmp_path: Path) -> None:
    assert loc.read("run.json") is None
    loc.write("run.json", b'{"status": "running"}')
    loc.write("run.json", b'{"status": "complete"}')
    assert loc.read("run.json") == b'{"status": "complete"}'
    assert loc.create(".s2c/lock", b"1") is True
    assert loc.create(".s2c/lock", b"2") is False
    assert loc.read(".s2c/lock") == b"1"
    big = tmp_path / "big.tif"
    big.write_bytes(np.random.default_rng(0).bytes(9 * 1024 * 1024 + 5))  # two parts
    data = big.read_bytes()
    loc.upload("change_prob.tif", big)
    assert loc.read("change_prob.tif") == data
    assert loc.list(".s2c") == [".s2c/lock"]
    loc.delete_prefix(".s2c")
    loc.delete(".s2c/lock")
    assert loc.list(".s2c") == [] and not loc.exists(".s2c/lock")
    group = zarr.open_group(loc.zarr_store("change.zarr"), mode="w")
    arr = group.create_array("a", shape=(4, 4), dtype="u1")
    arr[:] = 7
    assert loc.exists("change.zarr")
    assert np.all(zarr.open_group(loc.zarr_store("change.zarr"), mode="r")["a"][:] == 7)  # type: ignore[index]
    loc.delete_prefix("change.zarr")
    assert not loc.exists("change.zarr")


def test_object_location__operations(location: ObjectLocation, tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    _roundtrip(location, tmp_path / "scratch")


def test_local_location__operations(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / ".s2c").mkdir(parents=True)
    _roundtrip(FolderLocation(out), tmp_path)


def test_locked__second_run_refused_and_lock_released(location: ObjectLocation) -> None:
    with lock.locked(location):
        holder = json.loads(location.read(lock.LOCK) or b"")
        assert holder["host"] == socket.gethostname()
        with pytest.raises(OutputLockedError, match=r"is locked by another run.*remove 's3://"), \
                lock.locked(location):
            pass
    assert location.read(lock.LOCK) is None
    with lock.locked(location):
        pass


def test_locked__stale_lock_of_dead_process_replaced(location: ObjectLocation) -> None:
    location.write(lock.LOCK, json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}).encode())
    with lock.locked(location):
        assert json.loads(location.read(lock.LOCK) or b"")["pid"] != 2**22 + 12345


def test_locked__lock_of_other_host_kept(location: ObjectLocation) -> None:
    location.write(lock.LOCK, json.dumps({"pid": 1, "host": "elsewhere"}).encode())
    with pytest.raises(OutputLockedError, match="elsewhere"), lock.locked(location):
        pass


def test_object_ledger(location: ObjectLocation) -> None:
    ledger = ObjectLedger(location)
    assert ledger.done() == set()
    ledger.add((0, 1))
    ledger.add((2, 0))
    ledger.add((2, 0))
    location.write(f"{layout.LEDGER_PREFIX}/junk", b"")
    assert ledger.done() == {(0, 1), (2, 0)}
    ledger.rewrite({(2, 0), (3, 3)})
    assert ledger.done() == {(2, 0), (3, 3)}


def test_check_writable__ok(location: ObjectLocation) -> None:
    location.probe()
    assert location.list(".s2c") == []


def test_check_writable__missing_bucket(aws_env: S3Server) -> None:
    loc = open_location("s3://no-such-bucket-s2c/p", StorageConfig(allow_http=True, max_retry=0))
    assert isinstance(loc, ObjectLocation)
    with pytest.raises(OutputError, match=r"s3://no-such-bucket-s2c/p.*bucket 'no-such-bucket-s2c' does not exist"):
        loc.probe()


def test_check_writable__unreachable_endpoint(aws_env: S3Server) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    loc = open_location("s3://bkt/p", StorageConfig(endpoint=endpoint, allow_http=True, max_retry=0))
    assert isinstance(loc, ObjectLocation)
    with pytest.raises(OutputError, match=rf"s3://bkt/p.*{endpoint} cannot be reached"):
        loc.probe()


def test_check_writable__bad_credentials(weed: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _bucket(weed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", weed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    loc = open_location(f"s3://{bucket}/p", StorageConfig(endpoint=weed.endpoint, allow_http=True, max_retry=0))
    assert isinstance(loc, ObjectLocation)
    with pytest.raises(OutputError, match=rf"s3://{bucket}/p.*credentials were refused"):
        loc.probe()


def test_runlog__on_s3_each_write_replaces_the_object(location: ObjectLocation) -> None:
    from s2c_batch.pipeline.output.runlog import RunLog, read_record

    assert read_record(location) is None
    log = RunLog(location)
    log.update(status="running")
    assert read_record(location) == {"status": "running"}
    log.update(status="complete")
    assert json.loads(location.read(layout.RUN_JSON) or b"") == {"status": "complete"}


def test_prepare__refuses_a_run_without_a_flag_and_allows_resume_or_overwrite(location: ObjectLocation) -> None:
    location.prepare(resume=False, overwrite=False)  # empty prefix
    location.write(layout.RUN_JSON, b'{"status": "failed"}')
    assert not lock.has_run(location)  # a failed run without products protects nothing
    location.write("change_prob.tif", b"cog")
    assert lock.has_run(location)
    with pytest.raises(OutputExistsError, match=r"s3://.*--resume.*--overwrite"):
        location.prepare(resume=False, overwrite=False)
    location.prepare(resume=True, overwrite=False)
    with pytest.raises(OutputError, match="exclude each other"):
        location.prepare(resume=True, overwrite=True)
    with lock.locked(location), pytest.raises(OutputLockedError):
        location.prepare(resume=True, overwrite=False)


def test_clear_products__removes_only_own_names_and_keeps_the_lock(location: ObjectLocation) -> None:
    for key in (layout.RUN_JSON, "change.zarr/zarr.json", "change.zarr/change_prob/c/0/0", "change_mask.tif",
                ".s2c/blocks/0_0", ".s2c/fit.json", "notes.txt"):
        location.write(key, b"x")
    with lock.locked(location):
        location.clear_products()
        assert location.list("") == [".s2c/lock", "notes.txt"]


@pytest.mark.parametrize("profile", [None, "s2c-test"])
def test_object_location__credentials_from_an_aws_credentials_file(
        weed: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str | None) -> None:
    bucket = _bucket(weed)
    creds = tmp_path / "credentials"
    creds.write_text(f"[{profile or 'default'}]\naws_access_key_id = {weed.access_key}\n"
                     f"aws_secret_access_key = {weed.secret_key}\n")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    loc = open_location(f"s3://{bucket}/p", StorageConfig(endpoint=weed.endpoint, allow_http=True, max_retry=0,
                                                          profile=profile, region="us-east-1"))
    assert isinstance(loc, ObjectLocation)
    loc.probe()  # weed checks the signature
    loc.write("a", b"1")
    assert loc.read("a") == b"1"
