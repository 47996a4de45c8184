"""``s2c-batch run --out s3://...`` against a real S3 server (moto_server on 127.0.0.1).

The run to a bucket prefix holds the same Zarr objects, byte for byte, the same COG
pixels, quicklook bytes, polygons and STAC item as the same run to a local folder; a
second run on the prefix is refused while a lock is held or a run is there; ``--resume``
completes a run that stopped part way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import OutputError, OutputExistsError, OutputLockedError
from s2c_batch.pipeline.output import lock, store
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.objects import ObjectLocation
from s2c_batch.pipeline.run.runner import run_change_detection

from objectstore import S3Server, assert_same_as_local, upload
from testutils import RealCluster, make_pair

#: Small blocks so the scene has several; with every derived product (the default).
WITH_DERIVED = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=128", "tiling.chunk_size=64",
                "storage.allow_http=true", "storage.max_retry=0"]

#: The same without the derived products (the tests of the store, COGs, lock and resume).
SETTINGS = [*WITH_DERIVED, "output.polygons=false", "output.quicklook=false", "output.stac=false"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("scenes"), 200, 300, seed=5)


def _prefix(server: S3Server) -> str:
    bucket = f"out-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    return f"s3://{bucket}/runs/r1"


def test_run__to_s3_equals_the_local_run(aws_env: S3Server, scenes: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = load_config("cva", SETTINGS)
    local = tmp_path / "local"
    run_change_detection(*scenes, local, cfg, progress=False)
    url = _prefix(aws_env)
    result = run_change_detection(*scenes, url, cfg, progress=False)
    assert result.out == url and result.products["change_prob.tif"] == f"{url}/change_prob.tif"
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    assert_same_as_local(remote, local, tmp_path)
    assert store.is_consolidated(remote.child("change.zarr"))  # and byte-equal to the local one's
    record = json.loads(remote.read("run.json") or b"")
    assert record["status"] == "complete"
    assert aws_env.secret_key not in (remote.read("run.json") or b"").decode()
    assert remote.read(lock.LOCK) is None  # released
    assert ObjectLedger(remote).done() == {(r, c) for r in range(2) for c in range(3)}

    with pytest.raises(OutputExistsError, match=rf"{url}.*--resume.*--overwrite"):
        run_change_detection(*scenes, url, cfg, progress=False)
    with lock.locked(remote), pytest.raises(OutputLockedError, match=rf"{url}.*locked by another run"):
        run_change_detection(*scenes, url, cfg, progress=False, overwrite=True)

    # A run that stopped part way: run.json "running", two blocks and a COG lost.
    record["status"] = "running"
    remote.write("run.json", json.dumps(record).encode())
    remote.delete("change_mask.tif")
    remote.delete(ObjectLedger.key((1, 2)))
    remote.delete("change.zarr/change_prob/c/0/0")  # recorded, but its shard is gone
    resumed = run_change_detection(*scenes, url, cfg, progress=False, resume=True)
    assert resumed.blocks_reused == 4
    assert_same_as_local(remote, local, tmp_path)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"

    again = run_change_detection(*scenes, url, cfg, progress=False, overwrite=True)
    assert again.blocks_reused == 0
    assert_same_as_local(remote, local, tmp_path)


def _assert_same_derived(remote: ObjectLocation, local: Path, tmp_path: Path) -> None:
    """The STAC item, quicklook and polygons on S3 equal the local run's (the item up to processing times)."""
    import geopandas as gpd
    import pyarrow.parquet as pq

    assert remote.read("quicklook.png") == (local / "quicklook.png").read_bytes()
    items = [json.loads(remote.read("stac-item.json") or b""), json.loads((local / "stac-item.json").read_text())]
    for item in items:
        item["properties"].pop("created")
        if item["properties"]["s2c:datetime_source"] == "processing":  # undated synthetic scenes
            item["properties"].pop("datetime")
    assert items[0] == items[1]
    assert items[0]["id"] == local.name == remote.prefix.rsplit("/", 1)[-1]
    assert {a["href"] for a in items[0]["assets"].values()} == {
        "./change.zarr", "./change_prob.tif", "./change_mask.tif", "./changes.parquet", "./quicklook.png",
        "./run.json"}
    fetched = tmp_path / "fetched-changes.parquet"
    fetched.write_bytes(remote.read("changes.parquet") or b"")
    got, want = gpd.read_parquet(fetched), gpd.read_parquet(local / "changes.parquet")
    assert len(want) > 0
    assert got.drop(columns="geometry").equals(want.drop(columns="geometry"))
    assert got.geometry.geom_equals_exact(want.geometry, tolerance=0).all()
    assert pq.read_schema(fetched).metadata[b"s2c:provenance"] == \
        pq.read_schema(local / "changes.parquet").metadata[b"s2c:provenance"]


def test_run__derived_products_to_s3_equal_the_local_ones(
        aws_env: S3Server, scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """With Otsu's threshold, the polygon tasks start behind the mask pass and read the store on S3."""
    cfg = load_config("cva", [*WITH_DERIVED, "model.threshold=otsu", "model.standardize=scene"])
    local = tmp_path / "r1"
    run_change_detection(*scenes, local, cfg, progress=False)
    url = _prefix(aws_env)
    result = run_change_detection(*scenes, url, cfg, progress=False)
    assert {k: v for k, v in result.products.items() if not k.endswith(".tif")} == {
        "change.zarr": f"{url}/change.zarr", "changes.parquet": f"{url}/changes.parquet",
        "quicklook.png": f"{url}/quicklook.png", "stac-item.json": f"{url}/stac-item.json"}
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    assert_same_as_local(remote, local, tmp_path)
    _assert_same_derived(remote, local, tmp_path)
    assert not [k for k in remote.list("") if k.endswith(".tmp") or "/." in k or k.startswith(".") and
                not k.startswith(".s2c/")]

    # Switched off on a rerun, a derived object is removed, as a derived file is from a folder.
    again = load_config("cva", [*WITH_DERIVED, "model.threshold=otsu", "model.standardize=scene",
                                "output.quicklook=false", "output.polygons=false"])
    run_change_detection(*scenes, url, again, progress=False, overwrite=True)
    assert not remote.exists("quicklook.png") and not remote.exists("changes.parquet")
    assert "quicklook" not in json.loads(remote.read("stac-item.json") or b"")["assets"]


def test_run__missing_bucket_is_exit_4_before_any_work(aws_env: S3Server, scenes: tuple[Path, Path]) -> None:
    with pytest.raises(OutputError, match=r"s3://no-such-bucket-s2c-run/p.*does not exist: create it") as info:
        run_change_detection(*scenes, "s3://no-such-bucket-s2c-run/p", load_config("cva", SETTINGS), progress=False)
    assert info.value.exit_code == 4


@pytest.mark.cluster
def test_run__s3_to_s3_on_clean_workers_equals_the_run_to_a_local_folder(
        aws_env: S3Server, scenes: tuple[Path, Path], s3_workers: RealCluster, tmp_path: Path) -> None:
    urls = upload(aws_env, {"t1.tif": scenes[0], "t2.tif": scenes[1]})
    cfg = load_config("cva", WITH_DERIVED)  # the polygon tasks read the store on S3 from these workers too
    local = tmp_path / "r1"
    run_change_detection(urls["t1.tif"], urls["t2.tif"], local, cfg, scheduler=s3_workers.address,
                         progress=False)
    url = _prefix(aws_env)
    run_change_detection(urls["t1.tif"], urls["t2.tif"], url, cfg, scheduler=s3_workers.address,
                         progress=False)
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    assert_same_as_local(remote, local, tmp_path)
    _assert_same_derived(remote, local, tmp_path)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"


@pytest.mark.cluster
def test_run__sigkill_once_the_store_exists_then_resume_on_s3_completes(
        aws_env: S3Server, scenes: tuple[Path, Path], s3_workers: RealCluster, tmp_path: Path) -> None:
    cfg = load_config("cva", SETTINGS)
    local = tmp_path / "local"
    run_change_detection(*scenes, local, cfg, scheduler=s3_workers.address, progress=False)
    url = _prefix(aws_env)
    remote = open_location(url, cfg.storage)
    assert isinstance(remote, ObjectLocation)
    sets = sum((["--set", s] for s in SETTINGS), [])
    proc = subprocess.Popen(  # inherits AWS_ENDPOINT_URL and the credentials (aws_env)
        [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", "run", *map(str, scenes),
         "--out", url, "--config", "cva", "--scheduler", s3_workers.address, "--no-progress", *sets],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while remote.read("change.zarr/zarr.json") is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert json.loads(remote.read("run.json") or b"")["status"] == "running"
    assert remote.read(lock.LOCK) is not None  # left by the killed run: stale, replaced by the next
    with pytest.raises(OutputExistsError):
        run_change_detection(*scenes, url, cfg, scheduler=s3_workers.address, progress=False)
    res = run_change_detection(*scenes, url, cfg, scheduler=s3_workers.address, progress=False, resume=True)
    assert res.status == "complete"
    assert_same_as_local(remote, local, tmp_path)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"


@pytest.mark.cluster
def test_run__two_runs_started_together_on_one_prefix_one_is_refused(
        aws_env: S3Server, scenes: tuple[Path, Path], s3_workers: RealCluster, tmp_path: Path) -> None:
    url = _prefix(aws_env)
    sets = sum((["--set", s] for s in SETTINGS), [])
    cmd = [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()", "run", *map(str, scenes),
           "--out", url, "--config", "cva", "--scheduler", s3_workers.address, "--no-progress", *sets]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    results = sorted((p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs)
    assert [code for code, _ in results] == [0, 4], results
    assert "is locked by another run" in results[1][1] or "already holds a run" in results[1][1]
    remote = open_location(url, load_config("cva", SETTINGS).storage)
    assert json.loads(remote.read("run.json") or b"")["status"] == "complete"
    assert remote.read(lock.LOCK) is None
