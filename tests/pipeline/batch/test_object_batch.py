"""`batch` and `compare` with an ``s3://`` out against a real S3 server (moto_server on 127.0.0.1).

A batch of two runs to a bucket prefix holds the same Zarr objects, byte for byte, and
the same COG pixels as the same batch to local folders; a rerun skips the complete runs
and resumes the broken one; ``compare`` writes each comparator's run and ``compare.json``
under the prefix, equal to the local comparison; a missing bucket is exit 4 before any work.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner

from s2c_batch.pipeline.batch.runs_file import load_runs_file
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.objects import ObjectLocation

from objectstore import S3Server, assert_same_as_local
from testutils import RealCluster, make_pair, write_tif

Capsys = pytest.CaptureFixture[str]
#: Several blocks per scene, every derived product (STAC item, quicklook, polygons) on.
SETTINGS = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=128", "tiling.chunk_size=64",
            "storage.allow_http=true", "storage.max_retry=0", "model.threshold=0.3"]
SIZES = [(200, 300), (150, 260)]


def _bucket(server: S3Server) -> str:
    bucket = f"night-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    return bucket


def _runs_file(root: Path, name: str, outs: list[str], base: str | None = None) -> Path:
    doc: dict[str, Any] = {"defaults": {"config": "cva", "set": SETTINGS}, "runs": [
        {"name": f"tile{i}", "t1": f"scenes/tile{i}/t1.tif", "t2": f"scenes/tile{i}/t2.tif", "out": out}
        for i, out in enumerate(outs)]}
    if base is not None:
        doc["defaults"]["out"] = base
    path = root / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _batch(runs: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    summary = runs.with_suffix(".summary.json")
    result = CliRunner().invoke(cli, ["batch", str(runs), "--summary", str(summary), "--no-progress", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(summary.read_text()), result.output


def _location(url: str) -> ObjectLocation:
    """The prefix as the runs of these tests reach it (endpoint from ``AWS_ENDPOINT_URL``)."""
    location = open_location(url, load_config("cva", SETTINGS).storage)
    assert isinstance(location, ObjectLocation)
    return location


STATS = ("pixels", "valid_pixels", "changed_pixels", "changed_area_km2", "area_method", "products")


@pytest.mark.cluster
def test_batch__two_runs_to_s3_equal_the_local_batch_and_rerun_skips_and_resumes(
        aws_env: S3Server, s3_workers: RealCluster, tmp_path: Path) -> None:
    for i, (h, w) in enumerate(SIZES):
        (tmp_path / "scenes" / f"tile{i}").mkdir(parents=True)
        make_pair(tmp_path / "scenes" / f"tile{i}", h, w, seed=20 + i, nodata=0)
    local_runs = _runs_file(tmp_path, "LOCAL.yaml", ["products/tile0", "products/tile1"])
    code, local, output = _batch(local_runs, "--scheduler", s3_workers.address, "--max-concurrent", "2")
    assert code == 0 and local["counts"] == {"complete": 2}, output
    base = f"s3://{_bucket(aws_env)}/night"
    # Relative outs join the defaults.out prefix as keys (./tile0 -> night/tile0).
    s3_runs = _runs_file(tmp_path, "S3.yaml", ["./tile0", "tile1/"], base=base)
    code, remote, output = _batch(s3_runs, "--scheduler", s3_workers.address, "--max-concurrent", "2")
    assert code == 0 and remote["counts"] == {"complete": 2}, output
    records = {i: _location(f"{base}/tile{i}") for i in range(2)}
    for i, (got, want) in enumerate(zip(remote["runs"], local["runs"], strict=True)):
        assert got["out"] == f"{base}/tile{i}" and got["mode"] == "fresh"
        assert {k: got[k] for k in STATS} == {k: want[k] for k in STATS}
        assert got["changed_pixels"] > 0 and got["products"] == [
            "change.zarr", "change_mask.tif", "change_prob.tif", "changes.parquet", "quicklook.png", "stac-item.json"]
        location = records[i]
        assert_same_as_local(location, tmp_path / "products" / f"tile{i}", tmp_path)
        record = json.loads(location.read("run.json") or b"")
        assert record["status"] == "complete"
        assert record["fingerprint"] == json.loads((tmp_path / f"products/tile{i}/run.json").read_text())[
            "fingerprint"]
        assert location.read(lock.LOCK) is None
    before = {i: loc.read("run.json") for i, loc in records.items()}

    code, again, _ = _batch(s3_runs, "--scheduler", s3_workers.address)
    assert code == 0 and [r["mode"] for r in again["runs"]] == ["skip", "skip"]
    assert again["counts"] == {"skipped": 2}
    assert [r["changed_pixels"] for r in again["runs"]] == [r["changed_pixels"] for r in remote["runs"]]
    assert {i: loc.read("run.json") for i, loc in records.items()} == before, "a skipped run was rewritten"

    # A derived product lost: the run is no longer complete, and is resumed (nothing recomputed).
    records[0].delete("quicklook.png")
    # tile1 died mid-run: run.json "running", one block's record and a COG lost.
    broken = records[1]
    broken.write("run.json", json.dumps({**json.loads(before[1] or b""), "status": "running"}).encode())
    broken.delete(ObjectLedger.key((0, 0)))
    broken.delete("change_mask.tif")
    code, resumed, _ = _batch(s3_runs, "--scheduler", s3_workers.address)
    assert code == 0 and [r["mode"] for r in resumed["runs"]] == ["resume", "resume"]
    assert records[0].read("quicklook.png") == (tmp_path / "products/tile0/quicklook.png").read_bytes()
    record = json.loads(broken.read("run.json") or b"")
    assert record["status"] == "complete" and record["blocks"]["reused"] == record["blocks"]["total"] - 1
    assert_same_as_local(broken, tmp_path / "products" / "tile1", tmp_path)


def test_batch__missing_bucket_is_exit_4_before_any_run(aws_env: S3Server, tmp_path: Path,
                                                        capsys: Capsys) -> None:
    make_pair(tmp_path, 40, 40, seed=1)
    doc = {"defaults": {"config": "cva", "set": SETTINGS},
           "runs": [{"t1": "t1.tif", "t2": "t2.tif", "out": "local-out"},
                    {"name": "lost", "t1": "t1.tif", "t2": "t2.tif", "out": "s3://no-such-bucket-s2c-batch/p"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(SystemExit) as info:  # no --scheduler: it stops before starting a LocalCluster
        main(["batch", str(tmp_path / "RUNS.yaml"), "--no-progress"])
    assert info.value.code == 4
    err = capsys.readouterr().err
    assert "run 'lost': --out 's3://no-such-bucket-s2c-batch/p'" in err
    assert "the bucket 'no-such-bucket-s2c-batch' does not exist: create it or correct the URL" in err
    assert not (tmp_path / "local-out").exists() and not (tmp_path / "RUNS.summary.json").exists()


def test_load_runs_file__s3_outs_join_as_keys_and_bad_ones_are_listed(aws_env: S3Server, tmp_path: Path) -> None:
    doc = {"defaults": {"config": "cva", "out": "s3://bucket/night/", "set": ["storage.allow_http=true"]},
           "runs": [{"t1": "a.tif", "t2": "b.tif", "out": "31UFS"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "x/../31UGS/"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "/abs/folder"},
                    {"t1": "a.tif", "t2": "b.tif", "out": "s3://other/p"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    runs = load_runs_file(tmp_path / "RUNS.yaml").runs
    assert [r.name for r in runs] == ["31UFS", "31UGS", "folder", "p"]
    assert [(r.out.bucket, r.out.prefix) if isinstance(r.out, ObjectLocation) else r.out for r in runs] == [
        ("bucket", "night/31UFS"), ("bucket", "night/31UGS"), FolderLocation(Path("/abs/folder")), ("other", "p")]
    assert isinstance(runs[0].out, ObjectLocation) and runs[0].out.storage.endpoint == aws_env.endpoint
    doc["runs"] = [{"t1": "a.tif", "t2": "b.tif", "out": "../up"},
                   {"t1": "a.tif", "t2": "b.tif", "out": "https://h/p"},
                   {"t1": "a.tif", "t2": "b.tif", "out": "az://container/p"},
                   {"t1": "a.tif", "t2": "b.tif", "out": "31UFS"},
                   {"name": "again", "t1": "a.tif", "t2": "b.tif", "out": "s3://bucket/night/31UFS"}]
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    expected = (r"(?s)4 problem\(s\).*out '\.\./up' names no prefix below defaults\.out 's3://bucket/night'"
                r".*'https://h/p': outputs can go to a local folder or to s3://, gs:// URLs"
                r".*'az://container/p': outputs can go to a local folder or to s3://, gs:// URLs"
                r".*same out: \['s3://bucket/night/31UFS'\]")
    with pytest.raises(ConfigError, match=expected):
        load_runs_file(tmp_path / "RUNS.yaml")


def _compare(args: list[str], capsys: Capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["compare", *args])
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


@pytest.mark.cluster
def test_compare__to_s3_writes_the_runs_and_compare_json_of_the_local_comparison(
        aws_env: S3Server, s3_workers: RealCluster, tmp_path: Path, capsys: Capsys) -> None:
    t1, t2 = make_pair(tmp_path, 200, 300, seed=31)
    with rasterio.open(t1) as a, rasterio.open(t2) as b:
        truth = (np.abs(a.read().astype(int) - b.read().astype(int)).max(axis=0) > 40).astype(np.uint8)
    truth_path = write_tif(tmp_path / "truth.tif", truth[None])
    args = [str(t1), str(t2), "--comparators", "cva,pca_kmeans", "--truth", str(truth_path), "--config", "cva",
            "--scheduler", s3_workers.address, "--no-progress", *sum((["--set", s] for s in SETTINGS), []),
            "--set", "pca_kmeans.n_init=2"]
    code, output = _compare([*args, "--out", str(tmp_path / "cmp")], capsys)
    assert code == 0, output
    url = f"s3://{_bucket(aws_env)}/tables/cmp"
    code, output = _compare([*args, "--out", url], capsys)
    assert code == 0, output
    remote = _location(url)
    got = json.loads(remote.read("compare.json") or b"")
    want = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["out"] for r in got["comparators"]] == [f"{url}/cva", f"{url}/pca_kmeans"]
    assert got["comparators"][0]["f1"] is not None and got["comparators"][0]["changed_pixels"] > 0

    def timeless(doc: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("out", "seconds")} for r in doc["comparators"]]

    assert timeless(got) == timeless(want)
    assert {k: got[k] for k in ("t1", "t2", "truth")} == {k: want[k] for k in ("t1", "t2", "truth")}
    for name in ("cva", "pca_kmeans"):
        assert_same_as_local(remote.child(name), tmp_path / "cmp" / name, tmp_path)
        assert json.loads(remote.read(f"{name}/run.json") or b"")["status"] == "complete"


def test_compare__missing_bucket_is_exit_4_before_any_run(aws_env: S3Server, tmp_path: Path,
                                                          capsys: Capsys) -> None:
    t1, t2 = make_pair(tmp_path, 40, 40, seed=2)
    code, output = _compare([str(t1), str(t2), "--out", "s3://no-such-bucket-s2c-compare/t", "--comparators", "cva",
                             "--config", "cva", "--no-progress", *sum((["--set", s] for s in SETTINGS), [])], capsys)
    assert code == 4, output
    assert ("--out 's3://no-such-bucket-s2c-compare/t': writing 's3://no-such-bucket-s2c-compare/t/.s2c/.write-test'"
            " failed; the bucket 'no-such-bucket-s2c-compare' does not exist") in output


def test_readme__runs_yaml_on_a_bucket_is_a_valid_runs_file(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's nightly RUNS.yaml on a bucket loads as written: URL inputs kept, outs joined as keys."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    example = next(b for b in blocks if "out: s3://products/nightly" in b)
    (tmp_path / "RUNS.yaml").write_text(example)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    runs = load_runs_file(tmp_path / "RUNS.yaml").runs
    assert [(str(r.t1), r.out.url) for r in runs] == [
        ("s3://scenes/2024/31UFS.tif", "s3://products/nightly/2025-06-01/31UFS"),
        ("https://stac.example.org/items/31UGS-2024.json", "s3://products/nightly/2025-06-01/31UGS")]
    assert [r.name for r in runs] == ["31UFS", "31UGS"]
