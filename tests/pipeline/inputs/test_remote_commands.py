"""Every command that opens scenes takes URLs: `stack`, `score`, RUNS.yaml of `batch` (real servers on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.batch.runs_file import load_runs_file
from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.reader import read_window
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.inputs.vrt import stack_bands

from objectstore import S3Server, http_server, upload
from testutils import make_pair, write_tif

Capsys = pytest.CaptureFixture[str]


def test_load_runs_file__urls_are_kept_as_written(tmp_path: Path) -> None:
    doc = {"defaults": {"config": "cva"},
           "runs": [{"t1": "s3://scenes/2024/a.tif", "t2": "https://h/2025/a.tif", "out": "o"},
                    {"t1": "/vsis3/scenes/b.tif", "t2": "local/b.tif", "out": "p"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    first, second = load_runs_file(tmp_path / "RUNS.yaml").runs
    assert (str(first.t1), str(first.t2)) == ("s3://scenes/2024/a.tif", "https://h/2025/a.tif")
    assert (str(second.t1), str(second.t2)) == ("/vsis3/scenes/b.tif", str(tmp_path / "local" / "b.tif"))


def test_stack_bands__s3_band_files_make_a_vrt_that_reads_like_the_local_one(
        aws_env: S3Server, tmp_path: Path) -> None:
    t1, _ = make_pair(tmp_path, 80, 90, seed=2)
    with rasterio.open(t1) as src:
        bands = {f"B0{i}.tif": write_tif(tmp_path / f"B0{i}.tif", src.read(i)[None]) for i in (1, 2, 3)}
    urls = upload(aws_env, bands)
    storage = load_config("cva", ["storage.allow_http=true"]).storage
    vrt = stack_bands([urls[f"B0{i}.tif"] for i in (3, 2, 1)], tmp_path / "remote.vrt", storage)
    assert "/vsis3/" in vrt.read_text() and aws_env.secret_key not in vrt.read_text()
    local = stack_bands([bands[f"B0{i}.tif"] for i in (3, 2, 1)], tmp_path / "local.vrt")
    cfg = load_config("cva")
    remote_pair = open_pair(vrt, vrt, cfg.input, storage=storage)
    local_pair = open_pair(local, local, cfg.input)
    window = Window(5, 7, 60, 70)
    got, want = read_window(remote_pair.t1, window), read_window(local_pair.t1, window)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_score__pred_and_truth_over_http(tmp_path: Path, capsys: Capsys) -> None:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 2, (1, 64, 64)).astype(np.uint8)
    write_tif(tmp_path / "pred.tif", mask)
    write_tif(tmp_path / "truth.tif", mask)
    with http_server(tmp_path) as base:
        main_args = ["score", f"{base}/pred.tif", f"{base}/truth.tif", "--json"]
        with pytest.raises(SystemExit) as info:
            main(main_args)
    assert info.value.code in (0, None)
    result = json.loads(capsys.readouterr().out)
    assert result["pred"] == f"{base}/pred.tif" and result["f1"] == 1.0


def test_score__missing_s3_truth_is_exit_3(aws_env: S3Server, tmp_path: Path, capsys: Capsys) -> None:
    pred = write_tif(tmp_path / "pred.tif", np.zeros((1, 16, 16), np.uint8))
    url = upload(aws_env, {"pred.tif": pred})["pred.tif"]
    with pytest.raises(SystemExit) as info:
        main(["score", url, url.replace("pred.tif", "truth.tif"), "--set", "storage.allow_http=true"])
    assert info.value.code == 3
    assert "TRUTH file 's3://" in capsys.readouterr().err


def test_open_pair__local_vrt_of_urls_gets_the_endpoint_on_the_workers(aws_env: S3Server, tmp_path: Path) -> None:
    """A local VRT naming /vsis3/ files: AWS_ENDPOINT_URL is resolved into the sources' storage."""
    t1, _ = make_pair(tmp_path, 40, 40, seed=9)
    url = upload(aws_env, {"t1.tif": t1})["t1.tif"]
    shutil.copy(t1, tmp_path / "copy.tif")
    vrt = stack_bands([url, url, url], tmp_path / "t.vrt", StorageConfig(endpoint=aws_env.endpoint, allow_http=True))
    pair = open_pair(vrt, vrt, load_config("cva", ["storage.allow_http=true"]).input,
                     storage=StorageConfig(allow_http=True))
    assert pair.t1.storage is not None and pair.t1.storage.endpoint == aws_env.endpoint


def test_run__out_on_unsupported_object_storage_is_exit_4_before_anything(tmp_path: Path, capsys: Capsys,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    t1, t2 = make_pair(tmp_path, 32, 32, seed=1)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["run", str(t1), str(t2), "--out", "az://bucket/products", "--config", "cva"])
    assert info.value.code == 4
    # Refused before any request, naming what is accepted (not taken for a folder named "az:").
    assert ("--out 'az://bucket/products': outputs can go to a local folder or to s3://, gs:// URLs"
            in capsys.readouterr().err)
    assert not (tmp_path / "az:").exists()


def test_load_runs_file__out_on_unsupported_object_storage_is_a_problem(tmp_path: Path) -> None:
    doc = {"runs": [{"t1": "s3://b/a.tif", "t2": "s3://b/b.tif", "out": "https://h/products"}]}
    (tmp_path / "RUNS.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"'https://h/products': outputs can go to a local folder or to s3://, "
                                          r"gs:// URLs"):
        load_runs_file(tmp_path / "RUNS.yaml")
