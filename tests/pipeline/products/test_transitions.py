"""The from/to summary of a run with class maps: the matrix equals the class maps' counts over the changed
pixels, adds up to the changed area, and is in run.json, the STAC item and the batch summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import yaml
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.products.stac_schema import validate_item
from s2c_batch.pipeline.products.transitions import Transitions
from s2c_batch.pipeline.run.runner import run_change_detection

from testutils import make_pair, read_band

#: The tiny models (as ``tiny`` has them, so a warm cluster keeps them loaded) over a few blocks.
TINY = ["tiling.tile_size=64", "tiling.overlap=16", "tiling.block_size=64", "tiling.chunk_size=64"]


@pytest.mark.cluster
def test_transitions__matrix_of_the_class_maps_adds_up_to_the_changed_area(tmp_path: Path,
                                                                           dask_cluster) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 100, 150, seed=21, nodata=0)
    out = tmp_path / "products" / "tiny"
    run_change_detection(t1, t2, out, load_config("tiny", TINY), scheduler=dask_cluster.address, progress=False)
    mask, c1, c2 = (read_band(out / f"{n}.tif") for n in ("change_mask", "class_t1", "class_t2"))
    changed = mask == 1
    assert changed.sum() > 100, "the test needs changed pixels"
    oracle = np.zeros((4, 4), np.int64)
    np.add.at(oracle, (c1[changed], c2[changed]), 1)
    assert len({(a, b) for a, b in zip(c1[changed], c2[changed], strict=True)}) > 1

    record = json.loads((out / "run.json").read_text())
    matrix = record["transitions"]
    assert matrix["classes"] == ["background", "bareland", "water", "building"]
    assert matrix["pixels"] == oracle.tolist()
    np.testing.assert_allclose(matrix["area_m2"], oracle * 0.25)
    summary = record["summary"]
    assert summary["changed_pixels"] == changed.sum()
    assert summary["changed_area_m2"] == pytest.approx(changed.sum() * 0.25)
    assert sum(map(sum, matrix["area_m2"])) == pytest.approx(summary["changed_area_m2"])
    # the ten largest, largest first, named by the vocabulary
    top = summary["largest_transitions"]
    cells = sorted((-oracle[i, j], i, j) for i in range(4) for j in range(4) if oracle[i, j])[:10]
    assert [(t["from"], t["to"], t["pixels"]) for t in top] == [
        (matrix["classes"][i], matrix["classes"][j], -n) for n, i, j in cells]
    assert sum(t["share"] for t in top) == pytest.approx(1.0, abs=1e-5)
    # per target class (the tiny vocabulary's: building, 3): changed where t1 or t2 is it, gained, lost
    building = summary["by_target_class"]["building"]
    assert list(summary["by_target_class"]) == ["building"]
    assert building["changed_m2"] == pytest.approx((changed & ((c1 == 3) | (c2 == 3))).sum() * 0.25)
    assert building["gained_m2"] == pytest.approx((changed & (c2 == 3) & (c1 != 3)).sum() * 0.25)
    assert building["lost_m2"] == pytest.approx((changed & (c1 == 3) & (c2 != 3)).sum() * 0.25)
    item = pystac.Item.from_file(str(out / "stac-item.json"))
    validate_item(item)
    assert item.properties["s2c:transitions"] == matrix and item.properties["s2c:summary"] == summary

    # the batch summary of the same run (skipped: complete) carries them too
    runs = tmp_path / "RUNS.yaml"
    runs.write_text(yaml.safe_dump({"defaults": {"config": "tiny", "set": TINY},
                                    "runs": [{"name": "tiny", "t1": str(t1), "t2": str(t2), "out": "products/tiny"}]}))
    result = CliRunner().invoke(cli, ["batch", str(runs), "--scheduler", dask_cluster.address, "--no-progress",
                                      "--summary", str(tmp_path / "night.json")])
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "night.json").read_text())["runs"][0]
    assert entry["status"] == "skipped"
    assert entry["transitions"] == matrix and entry["summary"] == summary
    assert entry["unknown_area_km2"] == pytest.approx((mask == 255).sum() * 0.25 / 1e6, abs=1e-6)  # rounded


def test_transitions_summary__targets_gains_and_losses() -> None:
    pixels = np.array([[0, 4, 0], [1, 2, 0], [0, 0, 0]], np.int64)
    t = Transitions(("grass", "building", "water"), pixels, pixels * 0.5, "planar")
    s = t.summary(targets=(1,))
    assert s["changed_pixels"] == 7 and s["changed_area_m2"] == 3.5
    assert s["by_target_class"] == {"building": {"changed_m2": 3.5, "gained_m2": 2.0, "lost_m2": 0.5}}
    assert s["by_class_t2_m2"] == {"grass": 0.5, "building": 3.0}
    assert [(x["from"], x["to"], x["area_m2"]) for x in s["largest_transitions"]] == [
        ("grass", "building", 2.0), ("building", "building", 1.0), ("building", "grass", 0.5)]
    assert t.to_json()["pixels"] == pixels.tolist()
