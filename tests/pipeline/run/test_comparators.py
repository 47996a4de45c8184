"""The classical comparators through `s2c-batch run`: whole-scene numpy oracles, block sizes, workers, Otsu, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import zarr

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.run import runner
from s2c_batch.pipeline.run.runner import run_change_detection

import comparator_oracles as oracles
from testutils import RealCluster, make_pair, real_cluster, write_tif

Capsys = pytest.CaptureFixture[str]
H, W = 1100, 1150
SCALE = 10000.0
#: Every valid pixel in the sample (the oracles fit on all of them); few k-means starts for speed.
BASE = ["input.bands=[1,2,3,4]", f"input.scale={SCALE}", "tiling.chunk_size=256", "fit.sample_size=2000000",
        "pca_kmeans.n_init=3", "output.stac=false", "output.quicklook=false", "output.polygons=false"]
CASES = {
    "cva": ["model.comparator=cva", "model.standardize=scene", "model.threshold=otsu"],
    "irmad": ["model.comparator=irmad", "model.threshold=otsu", "output.stac=true"],
    "pca_kmeans": ["model.comparator=pca_kmeans"],
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-band uint16 pair (Sentinel-2-like reflectance x 10000): a gain between the dates, changes, nodata."""
    tmp = tmp_path_factory.mktemp("multispectral")
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([1500 + 900 * np.sin(yy / (23 + 5 * k)) * np.cos(xx / (31 + 3 * k)) for k in range(4)])
    a = base + rng.normal(0, 60, base.shape)
    b = 0.85 * base + 300 + rng.normal(0, 60, base.shape)
    for _ in range(25):
        r, c = rng.integers(0, H - 40), rng.integers(0, W - 40)
        hh, ww = rng.integers(8, 40, size=2)
        b[:, r : r + hh, c : c + ww] = rng.uniform(200, 5000, (4, 1, 1))
    a, b = np.clip(a, 1, 9000).astype(np.uint16), np.clip(b, 1, 9000).astype(np.uint16)
    a[:, :, :60] = 0  # nodata stripe in t1
    b[:, 500:620, 300:450] = 0  # nodata square in t2
    return (write_tif(tmp / "t1.tif", a, nodata=0, tiled=True), write_tif(tmp / "t2.tif", b, nodata=0, tiled=True))


def _unit(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with rasterio.open(pair[0]) as s1, rasterio.open(pair[1]) as s2:
        ra, rb = s1.read(), s2.read()
    valid = ~(ra == 0).all(axis=0) & ~(rb == 0).all(axis=0)
    a = np.clip(ra.astype(np.float32) / np.float32(SCALE), 0, 1)
    b = np.clip(rb.astype(np.float32) / np.float32(SCALE), 0, 1)
    a[:, ~valid] = 0
    b[:, ~valid] = 0
    return a, b, valid


@pytest.fixture(scope="module")
def expected(pair: tuple[Path, Path]) -> dict[str, tuple[dict[str, np.ndarray], int | None]]:
    """The oracles' products of each case."""
    a, b, valid = _unit(pair)
    return {
        "cva": oracles.products(oracles.cva(a, b, valid, standardized=True), valid, "otsu"),
        "irmad": oracles.products(oracles.linear(oracles.irmad_magnitude(a, b, valid), valid, 99.9), valid, "otsu"),
        "pca_kmeans": oracles.products(oracles.pca_kmeans(a, b, valid)[0], valid, 0.5),
    }


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A second real cluster: a scheduler and one worker process."""
    with real_cluster(tmp_path_factory.mktemp("dask-one"), workers=1, prefix="solo-worker") as cluster:
        yield cluster


def _cli(args: list[str], capsys: Capsys) -> tuple[int, str]:
    """Run the console entry point: (exit code, stdout + stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _store(out: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(out / "change.zarr"), mode="r")
    return {name: np.asarray(group[name][:]) for name in ("change_prob", "change_mask")}


def _run(pair: tuple[Path, Path], out: Path, case: str, scheduler: str, *extra: str, **kw: Any) -> Any:
    cfg = load_config("cva", [*BASE, *CASES[case], *extra])
    return run_change_detection(pair[0], pair[1], out, cfg, scheduler=scheduler, progress=False, **kw)


@pytest.mark.cluster
@pytest.mark.parametrize("case", list(CASES))
def test_run__classical_comparator_equals_numpy_oracle(case: str, pair: tuple[Path, Path], expected: Any,
                                                       tmp_path: Path, dask_cluster: RealCluster) -> None:
    out = tmp_path / case
    _run(pair, out, case, dask_cluster.address, "tiling.block_size=512")
    want, level = expected[case]
    got = _store(out)
    np.testing.assert_array_equal(got["change_prob"], want["change_prob"])
    np.testing.assert_array_equal(got["change_mask"], want["change_mask"])
    doc = json.loads((out / "run.json").read_text())
    with rasterio.open(out / "change_mask.tif") as cog:
        np.testing.assert_array_equal(cog.read(1), want["change_mask"])
        assert cog.tags()["S2C_COMPARATOR"] == case
        assert json.loads(cog.tags()["S2C_THRESHOLD"]) == doc["threshold"]
    assert doc["status"] == "complete" and doc["path"] == "untiled"
    assert doc["fit"]["comparator"] == case
    if level is not None:
        assert doc["threshold"] == {"method": "otsu", "level": level, "value": round(level / 254, 6),
                                    "valid_pixels": int((want["change_prob"] != 255).sum())}
        attrs = zarr.open_group(str(out / "change.zarr"), mode="r").attrs
        assert attrs["threshold"]["level"] == level and attrs["fit"] == doc["fit"]
    fit_file = json.loads((out / ".s2c" / "fit.json").read_text())
    assert fit_file["parameters"] == doc["fit"]
    if (out / "stac-item.json").exists():
        props = json.loads((out / "stac-item.json").read_text())["properties"]
        assert props["s2c:threshold"] == doc["threshold"] and props["s2c:fit"] == doc["fit"]
        assert props["s2c:comparator"] == case


@pytest.mark.cluster
@pytest.mark.parametrize("case,block,workers", [
    ("cva", 1024, 1), ("cva", 2048, 2),
    ("irmad", 1024, 2), ("irmad", 2048, 1),
    ("pca_kmeans", 1024, 1), ("pca_kmeans", 2048, 2),
])
def test_run__classical_products_do_not_depend_on_block_size_or_workers(
        case: str, block: int, workers: int, pair: tuple[Path, Path], expected: Any, tmp_path: Path,
        dask_cluster: RealCluster, one_worker: RealCluster) -> None:
    cluster = one_worker if workers == 1 else dask_cluster
    out = tmp_path / f"{case}-{block}"
    _run(pair, out, case, cluster.address, f"tiling.block_size={block}")
    want, _ = expected[case]
    got = _store(out)
    np.testing.assert_array_equal(got["change_prob"], want["change_prob"])
    np.testing.assert_array_equal(got["change_mask"], want["change_mask"])


@pytest.mark.cluster
def test_run__resume_reuses_the_fit(pair: tuple[Path, Path], expected: Any, tmp_path: Path,
                                    dask_cluster: RealCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "resume"

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # stops the run after the blocks, before the mask pass

    monkeypatch.setattr(runner, "build_mask_graph", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(pair, out, "irmad", dask_cluster.address, "tiling.block_size=512")
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    fit_before = (out / ".s2c" / "fit.json").read_text()
    monkeypatch.undo()

    def refit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("--resume must reuse .s2c/fit.json, not fit again")

    monkeypatch.setattr(runner, "fit_on_cluster", refit)
    result = _run(pair, out, "irmad", dask_cluster.address, "tiling.block_size=512", resume=True)
    assert result.blocks_reused == result.blocks == 9
    assert (out / ".s2c" / "fit.json").read_text() == fit_before
    want, _ = expected["irmad"]
    got = _store(out)
    np.testing.assert_array_equal(got["change_prob"], want["change_prob"])
    np.testing.assert_array_equal(got["change_mask"], want["change_mask"])


@pytest.mark.cluster
def test_run__too_few_valid_pixels_for_a_fit_is_exit_3(tmp_path: Path, dask_cluster: RealCluster,
                                                      capsys: Capsys) -> None:
    a = np.zeros((3, 64, 64), np.uint8)
    a[:, 0, :10] = 50
    t1 = write_tif(tmp_path / "t1.tif", a, nodata=0)
    t2 = write_tif(tmp_path / "t2.tif", (a + (a > 0) * 7).astype(np.uint8), nodata=0)
    cfg = load_config("cva", ["model.comparator=irmad"])
    with pytest.raises(InputError, match=r"has 10 pixel\(s\) valid in both dates.*fit.min_valid = 100"):
        run_change_detection(t1, t2, tmp_path / "out", cfg, scheduler=dask_cluster.address, progress=False)
    assert not (tmp_path / "out" / "change.zarr").exists()
    code, output = _cli(["run", str(t1), str(t2), "--out", str(tmp_path / "out2"), "--config", "cva",
                                       "--set", "model.comparator=irmad", "--scheduler", dask_cluster.address,
                                       "--no-progress"], capsys)
    assert code == 3, output
    assert "fit.min_valid" in output


def test_run__unknown_comparator_lists_the_valid_ones(pair: tuple[Path, Path], tmp_path: Path, capsys: Capsys) -> None:
    code, output = _cli(["run", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "o"),
                                       "--config", "cva", "--set", "model.comparator=mad"], capsys)
    assert code == 2
    assert "model.comparator must be one of ['cach', 'cva', 'pca_kmeans', 'irmad', 'dcva', 'anychange', " \
        "'inst_ceg', 'dynamicearth', 'ucd_scm'], got 'mad'" in output


def test_run__dcva_without_backbone_weights_is_exit_2(pair: tuple[Path, Path], tmp_path: Path, capsys: Capsys) -> None:
    code, output = _cli(["run", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "o"),
                                       "--config", "cva", "--set", "model.comparator=dcva"], capsys)
    assert code == 2
    assert "model.backbone_checkpoint is not set" in output
    assert not (tmp_path / "o").exists()


def test_plan__shows_the_untiled_path_and_halo(pair: tuple[Path, Path], capsys: Capsys) -> None:
    sets = [*sum((["--set", s] for s in BASE), []), "--set", "tiling.block_size=512"]
    code, output = _cli(["plan", str(pair[0]), str(pair[1]), "--config", "cva", "--set", "model.comparator=pca_kmeans",
                         *sets], capsys)
    assert code == 0, output
    doc = json.loads(output)
    assert doc["path"] == {"kind": "untiled", "halo": 2, "fit": True, "threshold": 0.5}
    assert doc["tiles"] == 0 and doc["blocks"] == 9
    tiled = json.loads(_cli(["plan", str(pair[0]), str(pair[1]), "--config", "tiny"], capsys)[1])
    assert tiled["path"]["kind"] == "tiled" and tiled["tiles"] > 0


@pytest.mark.cluster
def test_compare__three_comparators_on_one_cluster_table_and_json(
        pair: tuple[Path, Path], expected: Any, tmp_path: Path, dask_cluster: RealCluster, capsys: Capsys) -> None:
    truth = (expected["cva"][0]["change_mask"] == 1).astype(np.uint8)[None]  # the cva mask as a truth
    truth_path = write_tif(tmp_path / "truth.tif", truth)
    args = ["compare", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "cmp"),
            "--comparators", "cva,irmad,pca_kmeans", "--truth", str(truth_path), "--config", "cva",
            "--scheduler", dask_cluster.address, "--no-progress", "--set", "model.threshold=otsu",
            "--set", "model.standardize=scene", *sum((["--set", s] for s in BASE), []),
            "--set", "tiling.block_size=1024"]
    code, output = _cli(args, capsys)
    assert code == 0, output
    lines = output.strip().splitlines()
    assert lines[0].split()[:7] == ["comparator", "F1^c", "IoU^c", "Kappa", "Prec", "Rec", "OA"]
    assert [ln.split()[0] for ln in lines[1:]] == ["cva", "irmad", "pca_kmeans"]
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["comparator"]: r for r in doc["comparators"]}
    keys = {"comparator", "f1", "iou", "kappa", "precision", "recall", "oa", "seconds", "changed_pixels"}
    assert all(keys <= set(r) for r in rows.values())
    assert rows["cva"]["f1"] == 1.0 and rows["cva"]["kappa"] == 1.0  # scored against its own mask
    assert rows["cva"]["changed_pixels"] == int((expected["cva"][0]["change_mask"] == 1).sum())
    assert 0.0 < rows["irmad"]["f1"] < 1.0
    for name in rows:
        assert (tmp_path / "cmp" / name / "change_mask.tif").exists()


def test_compare__unknown_comparator_is_exit_2(pair: tuple[Path, Path], tmp_path: Path, capsys: Capsys) -> None:
    code, output = _cli(["compare", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "c"),
                                       "--comparators", "cva,foo"], capsys)
    assert code == 2
    assert "unknown comparator(s) ['foo']; valid ones are ['cach', 'cva', 'pca_kmeans', 'irmad', 'dcva', " \
        "'anychange', 'inst_ceg', 'dynamicearth', 'ucd_scm']" in output


@pytest.mark.cluster
def test_run__dcva_tiny_fits_once_and_does_not_depend_on_block_size(tmp_path: Path,
                                                                     dask_cluster: RealCluster) -> None:
    t1, t2 = make_pair(tmp_path, 520, 600, seed=3)
    stores = []
    for block in (256, 512):
        cfg = load_config("tiny", ["model.comparator=dcva", "model.identifier=none", "model.threshold=otsu",
                                   f"tiling.block_size={block}", "dcva.fit_tiles=4", "output.stac=false",
                                   "output.quicklook=false", "output.polygons=false"])
        out = tmp_path / f"dcva-{block}"
        run_change_detection(t1, t2, out, cfg, scheduler=dask_cluster.address, progress=False)
        doc = json.loads((out / "run.json").read_text())
        assert doc["status"] == "complete" and doc["path"] == "tiled"
        fit = doc["fit"]
        assert fit["comparator"] == "dcva" and fit["layers"] == [0, 1, 2, 3] and fit["reference"] > 0
        assert [len(c) for c in fit["channels"]] == [6, 6, 6, 6]  # 10% of the tiny backbone's 64 channels
        assert doc["threshold"]["method"] == "otsu"
        stores.append(_store(out))
    np.testing.assert_array_equal(stores[0]["change_prob"], stores[1]["change_prob"])
    np.testing.assert_array_equal(stores[0]["change_mask"], stores[1]["change_mask"])
    assert 0 < (stores[0]["change_mask"] == 1).sum() < stores[0]["change_mask"].size


@pytest.mark.cluster
def test_run__killed_run_resumes_with_the_saved_fit(pair: tuple[Path, Path], expected: Any, tmp_path: Path,
                                                    dask_cluster: RealCluster) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    sets = sum((["--set", s] for s in [*BASE, *CASES["irmad"], "tiling.block_size=512"]), [])
    cli = [sys.executable, "-c", "from s2c_batch.pipeline.cli import main; main()"]
    args = ["run", str(pair[0]), str(pair[1]), "--out", str(out), "--config", "cva",
            "--scheduler", dask_cluster.address, "--no-progress", *sets]
    proc = subprocess.Popen([*cli, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out / ".s2c" / "blocks.done"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ledger.exists() and ledger.read_text().strip():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    fit_before = (out / ".s2c" / "fit.json").read_text()
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    resumed = subprocess.run([*cli, "-v", *args, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "reusing the fitted irmad parameters" in resumed.stderr
    assert (out / ".s2c" / "fit.json").read_text() == fit_before
    want, _ = expected["irmad"]
    got = _store(out)
    np.testing.assert_array_equal(got["change_prob"], want["change_prob"])
    np.testing.assert_array_equal(got["change_mask"], want["change_mask"])
