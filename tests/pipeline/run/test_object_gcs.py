"""``--out gs://bucket/prefix`` on a real Google Cloud Storage emulator (fake-gcs-server on 127.0.0.1).

The location's operations go through gcsfs (the JSON API): objects, the lock's conditional
create (``ifGenerationMatch=0``), the ledger, a resumable upload, the Zarr store; a ``cva``
run to a prefix equals the same run to a local folder, derived products included, and
``--resume`` completes it after lost objects; a missing bucket and an unreachable endpoint
are exit 4 naming the URL and the fix. Nothing but 127.0.0.1 is contacted (``gcs_env``).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.errors import OutputError, OutputLockedError
from s2c_batch.pipeline.output import lock, store
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.objects import ObjectLocation
from s2c_batch.pipeline.run.runner import run_change_detection

from objectstore import GCSServer, assert_same_as_local, closed_port, gcs_upload, race_for_the_lock
from testutils import RealCluster, clean_env, make_pair

#: Small blocks so the scene has several; every derived product on (the default). The
#: emulator takes unsigned requests: no Google credentials exist in these tests.
SETTINGS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=128", "tiling.chunk_size=64",
            "storage.allow_http=true", "storage.max_retry=0", "storage.anonymous=true"]

STORAGE = StorageConfig(allow_http=True, max_retry=0, anonymous=True)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("scenes"), 200, 300, seed=5)


def _prefix(server: GCSServer) -> str:
    bucket = f"out-{uuid.uuid4().hex[:12]}"
    server.create_bucket(bucket)
    return f"gs://{bucket}/runs/r1"


@pytest.fixture
def location(gcs_env: GCSServer) -> ObjectLocation:
    """A fresh prefix of a fresh bucket on the emulator (its endpoint from ``STORAGE_EMULATOR_HOST``)."""
    loc = open_location(_prefix(gcs_env), STORAGE)
    assert isinstance(loc, ObjectLocation)
    return loc


def test_open_location__gs(gcs_env: GCSServer) -> None:
    loc = open_location("gs://bkt/a/b/", STORAGE)
    assert isinstance(loc, ObjectLocation)
    assert (loc.scheme, loc.bucket, loc.prefix, loc.url) == ("gs", "bkt", "a/b", "gs://bkt/a/b")
    assert loc.storage.gs_endpoint == gcs_env.endpoint  # STORAGE_EMULATOR_HOST, resolved on the client
    assert loc.child("change.zarr").url == "gs://bkt/a/b/change.zarr"
    assert loc.split() == (open_location("gs://bkt/a", STORAGE), "b")
    assert loc.key_url("run.json") == "gs://bkt/a/b/run.json"


def test_gs_location__operations(location: ObjectLocation, tmp_path: Path) -> None:
    loc = location
    assert loc.read("run.json") is None
    loc.write("run.json", b'{"status": "running"}')
    loc.write("run.json", b'{"status": "complete"}')
    assert loc.read("run.json") == b'{"status": "complete"}'
    assert loc.create(".s2c/lock", b"1") is True
    assert loc.create(".s2c/lock", b"2") is False  # 412: ifGenerationMatch=0 on an existing object
    assert loc.read(".s2c/lock") == b"1"
    big = tmp_path / "big.tif"
    big.write_bytes(np.random.default_rng(0).bytes(17 * 1024 * 1024 + 5))  # a resumable upload of 3 chunks
    loc.upload("change_prob.tif", big)
    assert loc.read("change_prob.tif") == big.read_bytes()
    assert loc.list(".s2c") == [".s2c/lock"]
    assert loc.list("") == [".s2c/lock", "change_prob.tif", "run.json"]
    loc.delete(".s2c/lock")
    loc.delete(".s2c/lock")  # missing: no error
    assert loc.list(".s2c") == [] and not loc.exists(".s2c/lock") and loc.exists("run.json")
    group = zarr.open_group(loc.zarr_store("change.zarr"), mode="w")
    arr = group.create_array("a", shape=(4, 4), chunks=(2, 2), dtype="u1")
    arr[:] = 7
    assert loc.exists("change.zarr")
    assert loc.list("change.zarr") == ["change.zarr/a/c/0/0", "change.zarr/a/c/0/1", "change.zarr/a/c/1/0",
                                       "change.zarr/a/c/1/1", "change.zarr/a/zarr.json", "change.zarr/zarr.json"]
    assert np.all(zarr.open_group(loc.zarr_store("change.zarr"), mode="r")["a"][:] == 7)  # type: ignore[index]
    loc.delete_prefix("change.zarr")
    loc.delete_prefix("nothing-here")
    assert not loc.exists("change.zarr") and loc.list("") == ["change_prob.tif", "run.json"]


def test_gs_locked__second_run_refused_and_lock_released(location: ObjectLocation) -> None:
    with lock.locked(location):
        holder = json.loads(location.read(lock.LOCK) or b"")
        assert holder["host"] == socket.gethostname()
        with pytest.raises(OutputLockedError, match=rf"is locked by another run.*remove '{location.url}/.s2c/lock'"), \
                lock.locked(location):
            pass
        assert json.loads(location.read(lock.LOCK) or b"") == holder  # the refused create left it whole
    assert location.read(lock.LOCK) is None
    ledger = ObjectLedger(location)
    ledger.add((0, 1))
    ledger.add((2, 0))
    ledger.rewrite({(2, 0), (3, 3)})
    assert ledger.done() == {(2, 0), (3, 3)}


def test_gs_locked__two_runs_past_prepare_one_wins_the_conditional_create(gcs_env: GCSServer) -> None:
    """Both found no lock and no run (``prepare``); ``ifGenerationMatch=0`` lets exactly one create it (5 races)."""
    for _ in range(5):
        location = open_location(_prefix(gcs_env), STORAGE)
        assert isinstance(location, ObjectLocation)
        _, lost = race_for_the_lock(location)
        assert lost.exit_code == 4 and location.key_url(lock.LOCK) in str(lost)
        assert location.read(lock.LOCK) is None  # the winner released it


def test_gs_write_block__unreachable_endpoint_is_an_output_error_naming_the_url(gcs_env: GCSServer) -> None:
    """A block task's write on gs:// (zarr's FsspecStore on gcsfs) fails as OutputError, as on S3."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    target = open_location("gs://bkt/run", StorageConfig(gs_endpoint=endpoint, allow_http=True, max_retry=0,
                                                         anonymous=True))
    assert isinstance(target, ObjectLocation)
    arrays = {n: np.zeros((64, 64), np.uint8) for n in ("change_prob", "change_mask")}
    with pytest.raises(OutputError, match=rf"gs://bkt/run/change.zarr.*{endpoint} cannot be reached.*--resume"):
        store.write_block(target.child("change.zarr"), Window(0, 0, 64, 64), arrays)


def test_gs_check_writable__missing_bucket_and_unreachable_endpoint(gcs_env: GCSServer) -> None:
    loc = open_location("gs://no-such-bucket-s2c/p", STORAGE)
    assert isinstance(loc, ObjectLocation)
    with pytest.raises(OutputError, match=r"gs://no-such-bucket-s2c/p.*bucket 'no-such-bucket-s2c' does not "
                                          r"exist: create it") as info:
        loc.probe()
    assert info.value.exit_code == 4
    endpoint = f"http://127.0.0.1:{closed_port()}"
    loc = open_location("gs://bkt/p", StorageConfig(gs_endpoint=endpoint, allow_http=True, max_retry=0,
                                                    anonymous=True))
    assert isinstance(loc, ObjectLocation)
    with pytest.raises(OutputError, match=rf"gs://bkt/p.*{endpoint} cannot be reached: check storage.gs_endpoint"
                                          " / STORAGE_EMULATOR_HOST"):
        loc.probe()


class _RefusingTokenServer(http.server.BaseHTTPRequestHandler):
    """An OAuth token endpoint that refuses every grant, as Google's does for a revoked service-account key."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_gs_check_writable__refused_service_account_is_exit_4_naming_google_credentials(
        gcs_env: GCSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service-account file (GOOGLE_APPLICATION_CREDENTIALS) whose token request is refused: 401, exit 4."""
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    tokens = http.server.HTTPServer(("127.0.0.1", 0), _RefusingTokenServer)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    try:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps({
            "type": "service_account", "project_id": "test", "private_key_id": "k1", "private_key": pem,
            "client_email": "s2c@test.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"http://127.0.0.1:{tokens.server_port}/token"}))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        loc = open_location(_prefix(gcs_env), StorageConfig(allow_http=True, max_retry=0))  # signed requests
        assert isinstance(loc, ObjectLocation)
        with pytest.raises(OutputError, match=rf"{loc.url}/.s2c/.write-test.*credentials were refused: check "
                                              "GOOGLE_APPLICATION_CREDENTIALS") as info:
            loc.probe()
        assert info.value.exit_code == 4
    finally:
        tokens.shutdown()


def test_gs_storage_fix__refused_credentials_names_google_credentials() -> None:
    """gcsfs's 403 (its ``OSError("Forbidden: ...")``): the fix names Google's credentials, not AWS's."""
    loc = ObjectLocation("bkt", "p", STORAGE, "gs")
    fix = loc.storage_fix(OSError("Forbidden: https://storage.googleapis.com/upload/...\nno access"))
    assert "GOOGLE_APPLICATION_CREDENTIALS" in fix and "AWS" not in fix


def test_run__to_gs_equals_the_local_run_and_resumes(
        gcs_env: GCSServer, scenes: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = load_config("cva", SETTINGS)
    local = tmp_path / "r1"
    run_change_detection(*scenes, local, cfg, progress=False)
    url = _prefix(gcs_env)
    result = run_change_detection(*scenes, url, cfg, progress=False)
    assert result.products["change_prob.tif"] == f"{url}/change_prob.tif"
    assert result.products["quicklook.png"] == f"{url}/quicklook.png"
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    assert_same_as_local(remote, local, tmp_path)
    assert store.is_consolidated(remote.child("change.zarr"))  # and byte-equal to the local one's
    assert remote.read("quicklook.png") == (local / "quicklook.png").read_bytes()
    items = [json.loads(remote.read("stac-item.json") or b""), json.loads((local / "stac-item.json").read_text())]
    for item in items:
        item["properties"].pop("created")
        if item["properties"]["s2c:datetime_source"] == "processing":  # undated synthetic scenes
            item["properties"].pop("datetime")
    assert items[0] == items[1]
    assert remote.read("changes.parquet") is not None and (local / "changes.parquet").is_file()
    assert remote.read(lock.LOCK) is None
    record = json.loads(remote.read("run.json") or b"")
    assert record["status"] == "complete"

    # A run that stopped part way: run.json "running", a ledger object and a COG lost.
    record["status"] = "running"
    remote.write("run.json", json.dumps(record).encode())
    remote.delete("change_mask.tif")
    remote.delete(ObjectLedger.key((1, 2)))
    resumed = run_change_detection(*scenes, url, cfg, progress=False, resume=True)
    assert resumed.blocks_reused == 5
    assert_same_as_local(remote, local, tmp_path)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"


def test_run__gs_missing_bucket_is_exit_4_before_any_work(gcs_env: GCSServer, scenes: tuple[Path, Path]) -> None:
    with pytest.raises(OutputError, match=r"gs://no-such-bucket-s2c-run/p.*does not exist: create it") as info:
        run_change_detection(*scenes, "gs://no-such-bucket-s2c-run/p", load_config("cva", SETTINGS), progress=False)
    assert info.value.exit_code == 4
    closed = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(OutputError, match=rf"gs://bkt/p.*{closed} cannot be reached") as info:
        run_change_detection(*scenes, "gs://bkt/p", load_config("cva", [*SETTINGS, f"storage.gs_endpoint={closed}"]),
                             progress=False)
    assert info.value.exit_code == 4


def test_cli_run__unreachable_gs_endpoint_is_exit_4_with_one_error_line(
        gcs_env: GCSServer, scenes: tuple[Path, Path]) -> None:
    """gcsfs logs its exhausted retries with a traceback; that is DEBUG, the error is one line."""
    closed = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", "run", str(scenes[0]),
         str(scenes[1]), "--out", "gs://bkt/p", "--config", "cva",
         *sum((["--set", s] for s in [*SETTINGS, "storage.max_retry=1", "storage.retry_delay=0.1",
                                      f"storage.gs_endpoint={closed}"]), [])],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: --out 'gs://bkt/p': writing 'gs://bkt/p/.s2c/.write-test' failed; the endpoint {closed} cannot "
        "be reached: check storage.gs_endpoint / STORAGE_EMULATOR_HOST and the network"]


@pytest.fixture(scope="module")
def gcs_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """Two workers whose environment names no emulator and holds no credentials (Google's metadata server closed)."""
    logs = tmp_path_factory.mktemp("gcs-cluster")
    nowhere = f"127.0.0.1:{closed_port()}"
    cluster = RealCluster.start(logs, 2, prefix="gcs-worker",
                                worker_env=clean_env(logs, GCE_METADATA_HOST=nowhere, GCE_METADATA_IP=nowhere))
    yield cluster
    cluster.stop()


@pytest.mark.cluster
def test_run__gs_to_gs_on_clean_workers_equals_the_local_run(
        gcs_env: GCSServer, scenes: tuple[Path, Path], gcs_cluster: RealCluster, tmp_path: Path) -> None:
    """The client's STORAGE_EMULATOR_HOST reaches the workers in the tasks; they write blocks and COGs there."""
    urls = gcs_upload(gcs_env, {"t1.tif": scenes[0], "t2.tif": scenes[1]})
    cfg = load_config("cva", SETTINGS)
    local = tmp_path / "r1"
    run_change_detection(urls["t1.tif"], urls["t2.tif"], local, cfg, scheduler=gcs_cluster.address, progress=False)
    url = _prefix(gcs_env)
    run_change_detection(urls["t1.tif"], urls["t2.tif"], url, cfg, scheduler=gcs_cluster.address, progress=False)
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    assert_same_as_local(remote, local, tmp_path)
    assert remote.read("quicklook.png") == (local / "quicklook.png").read_bytes()
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"


@pytest.mark.cluster
def test_batch__runs_file_with_a_gs_base_writes_each_run_and_a_rerun_skips(
        gcs_env: GCSServer, gcs_cluster: RealCluster, scenes: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``defaults.out: gs://bucket/night``: a relative out is a key below it; the CLI exits 0, then skips."""
    bucket = f"night-{uuid.uuid4().hex[:12]}"
    gcs_env.create_bucket(bucket)
    doc = {"defaults": {"config": "cva", "set": SETTINGS, "out": f"gs://{bucket}/night"},
           "runs": [{"name": "r1", "t1": str(scenes[0]), "t2": str(scenes[1]), "out": "tile0"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    args = ["batch", str(tmp_path / "RUNS.yaml"), "--scheduler", gcs_cluster.address, "--no-progress"]
    for mode in ("fresh", "skip"):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 0, capsys.readouterr().err
        summary = json.loads((tmp_path / "RUNS.summary.json").read_text())
        assert [(r["out"], r["mode"]) for r in summary["runs"]] == [(f"gs://{bucket}/night/tile0", mode)]
    remote = open_location(f"gs://{bucket}/night/tile0", STORAGE)
    assert isinstance(remote, ObjectLocation)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"
    assert remote.exists("change.zarr/zarr.json") and remote.exists("quicklook.png")

    doc["runs"].append({"name": "lost", "t1": str(scenes[0]), "t2": str(scenes[1]),
                        "out": "gs://no-such-bucket-s2c-batch/p"})
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 4
    assert ("run 'lost': --out 'gs://no-such-bucket-s2c-batch/p': writing "
            "'gs://no-such-bucket-s2c-batch/p/.s2c/.write-test' failed; the bucket 'no-such-bucket-s2c-batch' "
            "does not exist: create it or correct the URL") in capsys.readouterr().err


@pytest.mark.cluster
def test_compare__to_gs_writes_the_run_and_compare_json_of_the_local_comparison(
        gcs_env: GCSServer, gcs_cluster: RealCluster, scenes: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(scenes[0]), str(scenes[1]), "--comparators", "cva", "--config", "cva", "--scheduler",
            gcs_cluster.address, "--no-progress", *sum((["--set", s] for s in SETTINGS), [])]
    outs = {"local": str(tmp_path / "cmp"), "gs": f"{_prefix(gcs_env)}/cmp"}
    for out in outs.values():
        with pytest.raises(SystemExit) as info:
            main(["compare", *args, "--out", out])
        assert info.value.code == 0, capsys.readouterr().err
    remote = open_location(outs["gs"], STORAGE)
    assert isinstance(remote, ObjectLocation)
    got = json.loads(remote.read("compare.json") or b"")
    want = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["out"] for r in got["comparators"]] == [f"{outs['gs']}/cva"]
    assert [{k: v for k, v in r.items() if k not in ("out", "seconds")} for r in got["comparators"]] == \
        [{k: v for k, v in r.items() if k not in ("out", "seconds")} for r in want["comparators"]]
    assert_same_as_local(remote.child("cva"), tmp_path / "cmp" / "cva", tmp_path)
