"""`s2c-batch run` from s3://, gs:// and http:// inputs on real `dask worker` processes with a clean environment.

The workers hold only AWS credentials in their environment (like machines that share
no filesystem and no configuration with the client): the endpoint and GDAL's options
reach them inside the read tasks. Products equal a run on the local files; only the
provenance that names the inputs' identity (the fingerprint) differs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import InputError, OutputExistsError
from s2c_batch.pipeline.run.runner import run_change_detection

from objectstore import GCSServer, S3Server, gcs_upload, http_server, upload
from testutils import RealCluster, clean_env, make_pair

pytestmark = pytest.mark.cluster

SETTINGS = ["tiling.tile_size=128", "tiling.overlap=32", "tiling.block_size=256", "tiling.chunk_size=128",
            "storage.allow_http=true", "output.polygons=false"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("scenes"), 300, 420, seed=11)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, scenes: tuple[Path, Path],
              s3_workers: RealCluster) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    run_change_detection(*scenes, out, load_config("cva", SETTINGS), scheduler=s3_workers.address,
                         progress=False)
    return out


def assert_same_pixels(out: Path, ref: Path, *, same_config: bool = True) -> None:
    """Byte-equal Zarr chunks, equal metadata, COG pixels, tags, quicklook and STAC but for the fingerprint.

    ``same_config=False``: the runs' ``storage`` sections differ, so does the hash of the whole config.
    """
    files = sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*") if p.is_file() and ".s2c" not in p.parts)
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and ".s2c" not in p.parts)
    assert got == files
    for name in files:
        a, b = out / name, ref / name
        if name.endswith("zarr.json") or name == "run.json":
            continue  # zarr.json: attributes checked below; run.json: the inputs differ by design
        if name.endswith(".tif"):
            with rasterio.open(a) as da, rasterio.open(b) as db:
                assert np.array_equal(da.read(), db.read()), name
                assert (da.crs, da.transform, da.overviews(1)) == (db.crs, db.transform, db.overviews(1))
                ta, tb = da.tags(), db.tags()
                assert ta.pop("S2C_FINGERPRINT") != tb.pop("S2C_FINGERPRINT")
                if not same_config:
                    assert ta.pop("S2C_CONFIG_HASH") != tb.pop("S2C_CONFIG_HASH")
                assert ta == tb, name
        elif name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), name
        elif name == "stac-item.json":
            ia, ib = (_timeless(json.loads(p.read_text())) for p in (a, b))
            if not same_config:
                ia["properties"].pop("s2c:config_hash"), ib["properties"].pop("s2c:config_hash")
            assert ia == ib
        else:
            assert a.read_bytes() == b.read_bytes(), name
    for meta in (n for n in files if n.endswith("zarr.json")):
        ma, mb = (json.loads((p / meta).read_text()) for p in (out, ref))
        for attrs in (ma.get("attributes", {}), mb.get("attributes", {})):
            attrs.pop("fingerprint", None)
            if not same_config:
                attrs.pop("config_hash", None)
        assert ma == mb, meta


def _timeless(item: dict) -> dict:  # type: ignore[type-arg]
    props = dict(item["properties"], created=None, datetime=None)
    props.pop("s2c:fingerprint")
    return {**item, "id": None, "properties": props, "links": None, "assets": sorted(item["assets"])}


def test_run__s3_inputs_on_clean_workers_equal_the_local_run(
        aws_env: S3Server, scenes: tuple[Path, Path], reference: Path, s3_workers: RealCluster,
        tmp_path: Path) -> None:
    urls = upload(aws_env, {"in/t1.tif": scenes[0], "in/t2.tif": scenes[1]})
    out = tmp_path / "out"
    run_change_detection(urls["in/t1.tif"], urls["in/t2.tif"], out, load_config("cva", SETTINGS),
                         scheduler=s3_workers.address, progress=False)
    assert_same_pixels(out, reference)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete"
    assert record["inputs"]["t1"]["path"] == urls["in/t1.tif"] and record["inputs"]["t1"]["etag"]
    logs = [*out.rglob("*"), *s3_workers.log_dir.rglob("*")]  # scheduler and worker logs too
    for f in logs:  # the secret is nowhere in the products, records or logs
        assert not f.is_file() or aws_env.secret_key.encode() not in f.read_bytes(), f


def test_run__gs_inputs_on_clean_workers_equal_the_local_run(
        gcs_env: GCSServer, scenes: tuple[Path, Path], reference: Path, s3_workers: RealCluster,
        tmp_path: Path) -> None:
    """The workers' environment names no emulator: the client's STORAGE_EMULATOR_HOST reaches them in the tasks."""
    urls = gcs_upload(gcs_env, {"in/t1.tif": scenes[0], "in/t2.tif": scenes[1]})
    out = tmp_path / "out"
    run_change_detection(urls["in/t1.tif"], urls["in/t2.tif"], out,
                         load_config("cva", [*SETTINGS, "storage.anonymous=true"]),
                         scheduler=s3_workers.address, progress=False)
    assert_same_pixels(out, reference, same_config=False)  # storage.anonymous differs
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete"
    t1 = record["inputs"]["t1"]
    assert t1["path"] == urls["in/t1.tif"] and t1["generation"] and t1["size"] == scenes[0].stat().st_size


def test_run__http_inputs_on_clean_workers_equal_the_local_run(
        scenes: tuple[Path, Path], reference: Path, s3_workers: RealCluster, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    for f in scenes:
        shutil.copy(f, root / f.name)
    out = tmp_path / "out"
    with http_server(root) as base:
        run_change_detection(f"{base}/t1.tif", f"{base}/t2.tif", out, load_config("cva", SETTINGS),
                             scheduler=s3_workers.address, progress=False)
    assert_same_pixels(out, reference)


def test_run__resume_refuses_a_replaced_s3_object(
        aws_env: S3Server, scenes: tuple[Path, Path], s3_workers: RealCluster, tmp_path: Path) -> None:
    urls = upload(aws_env, {"t1.tif": scenes[0], "t2.tif": scenes[1]})
    out, cfg = tmp_path / "out", load_config("cva", SETTINGS)
    run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address, progress=False)
    again = run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address,
                                 progress=False, resume=True)
    assert again.blocks_reused == again.blocks  # the same objects: everything is kept
    bucket = urls["t2.tif"].removeprefix("s3://").split("/")[0]
    aws_env.client().upload_file(str(scenes[0]), bucket, "t2.tif")  # same URL, other content
    with pytest.raises(OutputExistsError, match=r"holds a run with another fingerprint") as info:
        run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address,
                             progress=False, resume=True)
    assert info.value.exit_code == 4


def test_run__resume_refuses_a_replaced_gs_object(
        gcs_env: GCSServer, scenes: tuple[Path, Path], s3_workers: RealCluster, tmp_path: Path) -> None:
    """A rewritten object has a new generation and ETag: the fingerprint changes."""
    urls = gcs_upload(gcs_env, {"t1.tif": scenes[0], "t2.tif": scenes[1]})
    out, cfg = tmp_path / "out", load_config("cva", [*SETTINGS, "storage.anonymous=true"])
    run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address, progress=False)
    again = run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address,
                                 progress=False, resume=True)
    assert again.blocks_reused == again.blocks  # the same objects: everything is kept
    gcs_env.put(urls["t2.tif"].removeprefix("gs://").split("/")[0], "t2.tif", scenes[0].read_bytes())
    with pytest.raises(OutputExistsError, match=r"holds a run with another fingerprint") as info:
        run_change_detection(urls["t1.tif"], urls["t2.tif"], out, cfg, scheduler=s3_workers.address,
                             progress=False, resume=True)
    assert info.value.exit_code == 4


def test_run__workers_without_credentials_fail_with_exit_3_and_leave_no_product(
        aws_env: S3Server, scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """The client can read the scenes, its workers cannot: the worker's error reaches the client whole."""
    urls = upload(aws_env, {"t1.tif": scenes[0], "t2.tif": scenes[1]})
    logs = tmp_path / "logs"
    logs.mkdir()
    cluster = RealCluster.start(logs, 1, prefix="keyless-worker",
                                worker_env=clean_env(logs, CPL_AWS_AUTODETECT_EC2="NO"))
    try:
        with pytest.raises(InputError, match=r"scene 's3://.*/t[12].tif' cannot be read: no credentials were "
                                             r"found.*every Dask worker") as info:
            run_change_detection(urls["t1.tif"], urls["t2.tif"], tmp_path / "out", load_config("cva", SETTINGS),
                                 scheduler=cluster.address, progress=False)
    finally:
        cluster.stop()
    assert info.value.exit_code == 3
    assert not (tmp_path / "out" / "change.zarr").exists()
