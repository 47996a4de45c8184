"""The ``change.zarr`` store on a real S3 server (moto_server on 127.0.0.1) equals the same store on disk."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS as RioCRS

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.objects import ObjectLocation

from objectstore import S3Server

BLOCK, CHUNK = 64, 32
PRODUCTS = ("change_prob", "change_mask")
GRID = Grid(RioCRS.from_epsg(32631).to_wkt(), (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0), 100, 150)


@pytest.fixture
def remote(aws_env: S3Server) -> ObjectLocation:
    """A fresh run prefix on the moto server."""
    bucket = f"out-{uuid.uuid4().hex[:12]}"
    aws_env.client().create_bucket(Bucket=bucket)
    loc = open_location(f"s3://{bucket}/run", StorageConfig(allow_http=True, max_retry=0))
    assert isinstance(loc, ObjectLocation)
    return loc


def _windows() -> list[Window]:
    return [Window(r, c, min(BLOCK, GRID.height - r), min(BLOCK, GRID.width - c))
            for r in range(0, GRID.height, BLOCK) for c in range(0, GRID.width, BLOCK)]


def _fill(path: store.StorePath) -> None:
    store.create_store(path, GRID, PRODUCTS, shard=BLOCK, chunk=CHUNK, attrs={"fingerprint": "fp"})
    rng = np.random.default_rng(3)
    for win in _windows():
        # one block all nodata: its shard must exist all the same
        fill = win.row == 0 and win.col == BLOCK
        arrays = {n: np.full((win.height, win.width), 255, np.uint8) if fill else
                  rng.integers(0, 255, (win.height, win.width), dtype=np.uint8) for n in PRODUCTS}
        store.write_block(path, win, arrays)


def test_store_on_s3__objects_byte_equal_to_the_local_store(remote: ObjectLocation, tmp_path: Path) -> None:
    local = tmp_path / "change.zarr"
    target = remote.child("change.zarr")
    _fill(local)
    _fill(pickle.loads(pickle.dumps(target)))  # what a task argument becomes on a worker
    on_disk = FolderLocation(tmp_path).list("change.zarr")
    assert remote.list("change.zarr") == on_disk
    for key in on_disk:
        assert remote.read(key) == (tmp_path / key).read_bytes(), key
    assert store.store_problem(target, GRID, PRODUCTS, shard=BLOCK, chunk=CHUNK, fingerprint="fp") is None
    ds = store.open_products(target)
    assert ds.rio.crs == GRID.crs_wkt or ds.rio.crs.to_epsg() == 32631
    assert ds.rio.transform().almost_equals(GRID.affine)
    np.testing.assert_array_equal(ds["change_prob"].values, store.open_products(local)["change_prob"].values)


def test_store_on_s3__missing_and_removed_shards_are_problems(remote: ObjectLocation) -> None:
    target = remote.child("change.zarr")
    _fill(target)
    wins = _windows()
    assert all(store.block_problem(target, w, PRODUCTS) is None for w in wins)
    store.remove_blocks(target, [wins[1]], PRODUCTS)
    assert "is missing" in (store.block_problem(target, wins[1], PRODUCTS) or "")
    remote.write("change.zarr/change_prob/c/0/0", b"torn")
    assert "does not decode" in (store.block_problem(target, wins[0], PRODUCTS) or "")
    assert "fingerprint" in (store.store_problem(target, GRID, PRODUCTS, shard=BLOCK, chunk=CHUNK,
                                                 fingerprint="other") or "")
    store.update_attrs(target, {"threshold": {"level": 3}})
    assert store.open_products(target).attrs["threshold"] == {"level": 3}


def test_write_cog__to_s3_equals_the_local_cog(remote: ObjectLocation, tmp_path: Path) -> None:
    import rasterio

    from s2c_batch.pipeline.run.cog import write_cog

    local_store, target = tmp_path / "change.zarr", remote.child("change.zarr")
    _fill(local_store)
    _fill(target)
    local = write_cog(local_store, "change_prob", tmp_path, GRID, window=BLOCK)
    url = write_cog(target, "change_prob", remote, GRID, window=BLOCK)
    assert url == f"{remote.url}/change_prob.tif"
    fetched = tmp_path / "fetched.tif"
    fetched.write_bytes(remote.read("change_prob.tif") or b"")
    with rasterio.open(local) as a, rasterio.open(fetched) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert a.profile == b.profile and a.tags() == b.tags()
        assert b.overviews(1) == a.overviews(1)
    keys = remote.list("")
    assert "change_prob.tif" in keys and not [k for k in keys if "tmp" in k]  # temporaries stay on local scratch


def test_prepare_resume__on_s3_keeps_verified_blocks_only(remote: ObjectLocation) -> None:
    from s2c_batch.kernels.raster.tiling import TilePlan
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.output.ledger import ObjectLedger
    from s2c_batch.pipeline.output.runlog import RunLog
    from s2c_batch.pipeline.run import recovery

    cfg = load_config("cva", [f"tiling.block_size={BLOCK}", f"tiling.chunk_size={CHUNK}", "tiling.tile_size=32",
                              "tiling.overlap=0"])
    plan = TilePlan(GRID.height, GRID.width, 32, 0, BLOCK)
    _fill(remote.child("change.zarr"))
    ledger = ObjectLedger(remote)
    for index in [(0, 0), (0, 1), (1, 2)]:
        ledger.add(index)
    ledger.add((9, 9))  # not a block of this plan
    remote.write("change.zarr/change_prob/c/1/2", b"torn")
    remote.write("change_prob.tif", b"old cog")
    RunLog(remote).update(status="running", fingerprint="fp")
    assert recovery.resumes(remote, "fp")
    kept = recovery.prepare_resume(remote, cfg, fingerprint="fp", grid=GRID, plan=plan)
    assert kept.store_kept and kept.reuse == {(0, 0), (0, 1)}
    assert set(kept.dropped) == {(1, 2), (9, 9)}
    assert ledger.done() == {(0, 0), (0, 1)}
    assert remote.read("change_prob.tif") is None
    assert not remote.exists("change.zarr/change_prob/c/1/2")  # a block computed again starts from no shard
    recovery.start_fresh(remote)
    assert remote.list("") == []


def test_write_block__unreachable_endpoint_is_an_output_error_naming_the_url(aws_env: S3Server) -> None:
    from s2c_batch.pipeline.errors import OutputError

    from objectstore import closed_port

    endpoint = f"http://127.0.0.1:{closed_port()}"
    target = open_location("s3://bkt/run", StorageConfig(endpoint=endpoint, allow_http=True, max_retry=0))
    assert isinstance(target, ObjectLocation)
    arrays = {n: np.zeros((BLOCK, BLOCK), np.uint8) for n in PRODUCTS}
    with pytest.raises(OutputError, match=rf"s3://bkt/run/change.zarr.*{endpoint} cannot be reached.*--resume"):
        store.write_block(target.child("change.zarr"), Window(0, 0, BLOCK, BLOCK), arrays)
