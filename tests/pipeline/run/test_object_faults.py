"""Faults of an ``s2c-batch run --out s3://...`` on real servers and a real Dask cluster.

- the endpoint goes away while blocks are being written: exit 4 with one line naming the
  URL and the fix, bounded by ``storage.max_retry``; ``--resume`` on the server started
  again completes with the products of a clean run (``weed mini``: its objects persist
  in its data folder, moto's do not);
- no secret of the client or the workers reaches the scheduler's tasks, the logs,
  ``run.json`` or the objects under the prefix;
- two runs both past :func:`~s2c_batch.pipeline.run.object_out.prepare` race for the
  lock: the conditional create (``If-None-Match: *``) lets exactly one through.

A block's write task is held (``S2C_TEST_STALL``, released by a file) so that the test
acts while the run is in flight, not after it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run import object_out
from s2c_batch.pipeline.run.location import ObjectLocation, open_location
from s2c_batch.pipeline.run.runner import run_change_detection
from s2c_batch.pipeline.run.testhooks import RELEASE_SUFFIX, STALL_ENV

from objectstore import S3Server, assert_same_as_local, weed_ports, weed_server
from testutils import RealCluster, clean_env, make_pair

#: Six blocks; few retries, so that a lost endpoint fails each request within a second.
SETTINGS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=128", "tiling.chunk_size=64",
            "storage.allow_http=true", "storage.max_retry=1", "storage.retry_delay=0.1",
            "output.polygons=false", "output.quicklook=false", "output.stac=false"]
#: The block whose write task waits for the test.
HELD = (1, 2)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("scenes"), 200, 300, seed=5)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", *args]


def _run_cmd(scenes: tuple[Path, Path], url: str, scheduler: str, *extra: str) -> list[str]:
    sets = sum((["--set", s] for s in SETTINGS), [])
    return _cli(*extra, "run", *map(str, scenes), "--out", url, "--config", "cva", "--scheduler", scheduler,
                "--no-progress", *sets)


def _hold(folder: Path, block: tuple[int, int]) -> Path:
    """The stall hook's file: block ``block``'s write task waits until ``<hook>.release`` exists."""
    hook = folder / "stall"
    hook.write_text(f"{block[0]} {block[1]} 1")
    return hook


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def _cluster(logs: Path, **env: str) -> Iterator[RealCluster]:
    """A scheduler and two workers whose environment holds a PATH, a HOME and ``env`` only."""
    cluster = RealCluster.start(logs, 2, prefix="faults-worker",
                                worker_env=clean_env(logs, AWS_EC2_METADATA_DISABLED="true", **env))
    try:
        yield cluster
    finally:
        cluster.stop()


def _use(monkeypatch: pytest.MonkeyPatch, server: S3Server, **extra: str) -> None:
    """This process (and the CLI it starts) speaks to ``server``: its credentials and endpoint."""
    for key, value in {**server.env(), "AWS_ENDPOINT_URL": server.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                       "CPL_AWS_AUTODETECT_EC2": "NO", **extra}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _bucket(server: S3Server) -> str:
    name = f"out-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.mark.cluster
def test_run__endpoint_lost_mid_run_is_exit_4_then_resume_completes(
        scenes: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs, data = tmp_path / "logs", tmp_path / "weed"
    logs.mkdir()
    data.mkdir()
    ports = weed_ports()
    hook = _hold(tmp_path, HELD)
    cfg = load_config("cva", SETTINGS)
    with contextlib.ExitStack() as stack:
        first_life = stack.enter_context(contextlib.ExitStack())
        server = first_life.enter_context(weed_server(data, logs, ports=ports))
        cluster = stack.enter_context(_cluster(logs, **server.env(), **{STALL_ENV: str(hook)}))
        _use(monkeypatch, server)
        url = f"s3://{_bucket(server)}/runs/r1"
        remote = open_location(url, cfg.storage)
        assert isinstance(remote, ObjectLocation)
        ledger = object_out.ObjectLedger(remote)
        stderr = tmp_path / "stderr"
        with open(stderr, "wb") as err:
            proc = subprocess.Popen(_run_cmd(scenes, url, cluster.address), stdout=subprocess.DEVNULL, stderr=err)
        try:
            # The held block is the last in write order: every other one is written and recorded.
            _wait_for(f"every block but {HELD} written, {HELD} held",
                      lambda: Path(f"{hook}.0").exists() and len(ledger.done()) == 5)
            first_life.close()  # the endpoint goes away with a block still to write
            lost = time.monotonic()
            Path(f"{hook}{RELEASE_SUFFIX}").touch()  # the worker's write now meets no server
            code = proc.wait(timeout=120)
            took = time.monotonic() - lost
        finally:
            if proc.poll() is None:
                proc.kill()
        text = stderr.read_text()
        assert code == 4, text
        assert "Traceback" not in text, text
        # One error naming the block, the store's URL and the fix; run.json could not say "failed".
        assert [line for line in text.splitlines() if not line.startswith("WARNING")] == [
            f"Error: writing block rows 128:200, cols 256:300 into '{url}/change.zarr' failed; the endpoint "
            f"{server.endpoint} cannot be reached: check storage.endpoint / AWS_ENDPOINT_URL and the network; "
            "then run again with --resume"], text
        assert [line for line in text.splitlines() if line.startswith("WARNING")] == [
            f"WARNING s2c_batch.pipeline.run.runlog: run.json keeps its previous record: --out '{url}': writing "
            f"'{url}/run.json' failed; the endpoint {server.endpoint} cannot be reached: check storage.endpoint "
            "/ AWS_ENDPOINT_URL and the network"], text
        assert took < 20, f"the client took {took:.1f} s to give up on a lost endpoint"

        stack.enter_context(weed_server(data, logs, ports=ports))  # the same folder and ports: the same objects
        assert json.loads(remote.read("run.json") or b"")["status"] == "running"
        assert json.loads(remote.read(object_out.LOCK) or b"")["pid"] == proc.pid  # stale: its process is gone
        assert ledger.done() == {(r, c) for r in range(2) for c in range(3)} - {HELD}
        resumed = run_change_detection(*scenes, url, cfg, scheduler=cluster.address, progress=False, resume=True)
        assert (resumed.status, resumed.blocks_reused) == ("complete", 5)
        assert json.loads(remote.read("run.json") or b"")["status"] == "complete"
        assert remote.read(object_out.LOCK) is None
        local = tmp_path / "local"
        run_change_detection(*scenes, local, cfg, scheduler=cluster.address, progress=False)
        assert_same_as_local(remote, local, tmp_path)
