"""The mask-level comparators through `s2c-batch run` and `compare` on a real cluster, and their config errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import load_config, mask_comparator, required_checkpoints
from s2c_batch.pipeline.run.threshold import choose_threshold, target_classes

from testutils import RealCluster, make_pair

Capsys = pytest.CaptureFixture[str]
#: Random weights score every query and proposal about 0.5: count them all, prompt a coarse grid.
LOOSE = ["model.confidence_threshold=0.0", "amg.points_per_side=4", "amg.pred_iou_thresh=0.0",
         "amg.stability_score_thresh=0.0", "output.stac=false", "output.quicklook=false", "output.polygons=false"]
CASES = {
    "anychange": ["model.comparator=anychange", "model.identifier=none"],
    "anychange_star": ["model.comparator=anychange"],
    "inst_ceg": ["model.comparator=inst_ceg"],
    "dynamicearth_imc": ["model.comparator=dynamicearth", "dynamicearth.mode=imc"],
    "dynamicearth_mci": ["model.comparator=dynamicearth", "dynamicearth.mode=mci"],
    "ucd_scm": ["model.comparator=ucd_scm", "model.threshold=otsu"],
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """300 x 320 px: four tiles of the tiny config (256, overlap 64), one block."""
    return make_pair(tmp_path_factory.mktemp("mask-pair"), 300, 320, seed=4)


def _cli(args: list[str], capsys: Capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def _sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


@pytest.mark.cluster
@pytest.mark.parametrize("case", list(CASES))
def test_run__mask_level_comparator_writes_every_product(case: str, pair: tuple[Path, Path], tmp_path: Path,
                                                         dask_cluster: RealCluster, capsys: Capsys) -> None:
    out = tmp_path / case
    code, output = _cli(["run", str(pair[0]), str(pair[1]), "--out", str(out), "--config", "tiny",
                         "--scheduler", dask_cluster.address, "--no-progress", *_sets([*LOOSE, *CASES[case]])], capsys)
    assert code == 0, output
    doc = json.loads((out / "run.json").read_text())
    assert doc["status"] == "complete" and doc["path"] == "tiled"
    identifier = "model.identifier=none" not in CASES[case]
    names = ["change_prob", "change_mask"] + (["class_t1", "class_t2"] if identifier else [])
    group = zarr.open_group(str(out / "change.zarr"), mode="r")
    arrays = set(group.array_keys())
    assert set(names) <= arrays and (identifier or "class_t1" not in arrays)
    for name in names:
        with rasterio.open(out / f"{name}.tif") as cog:
            assert cog.shape == (300, 320) and cog.overviews(1) is not None
    prob, mask = np.asarray(group["change_prob"][:]), np.asarray(group["change_mask"][:])
    valid = prob != 255
    assert valid.all() and set(np.unique(mask)) <= {0, 1}
    if case == "ucd_scm":  # one Otsu over the scene, over the non-zero levels
        assert doc["threshold"]["method"] == "otsu" and doc["threshold"]["level"] >= 1
        np.testing.assert_array_equal(mask == 1, prob >= doc["threshold"]["level"])
    else:  # the method's decision is p > 0.5, not restricted again by the class maps
        assert (prob[mask == 1] >= 127).all() and (mask[prob >= 128] == 1).all()


@pytest.mark.cluster
def test_compare__cach_and_three_mask_level_comparators_on_one_cluster(pair: tuple[Path, Path], tmp_path: Path,
                                                                       dask_cluster: RealCluster,
                                                                       capsys: Capsys) -> None:
    args = ["compare", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "cmp"), "--config", "tiny",
            "--comparators", "cach,anychange,inst_ceg,dynamicearth", "--scheduler", dask_cluster.address,
            "--no-progress", *_sets(LOOSE)]
    code, output = _cli(args, capsys)
    assert code == 0, output
    lines = output.strip().splitlines()
    assert lines[0].split()[:3] == ["comparator", "changed", "px"]
    assert [ln.split()[0] for ln in lines[1:]] == ["cach", "anychange", "inst_ceg", "dynamicearth"]
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["scheduler"] == dask_cluster.address
    assert [r["comparator"] for r in doc["comparators"]] == ["cach", "anychange", "inst_ceg", "dynamicearth"]
    for row in doc["comparators"]:
        assert row["valid_pixels"] == 300 * 320
        assert (tmp_path / "cmp" / row["comparator"] / "class_t1.tif").exists()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["model.comparator=inst_ceg", "model.identifier=none"],
         r"model\.comparator=inst_ceg needs the identifier .* set --set model\.identifier=segearth_ov3"),
        (["model.comparator=dynamicearth", "dynamicearth.mode=imc", "model.identifier=none"],
         r"model\.comparator=dynamicearth needs the identifier"),
        (["model.comparator=ucd_scm", "model.identifier=none", "model.threshold=otsu"],
         r"model\.comparator=ucd_scm needs the identifier"),
        (["model.comparator=ucd_scm", "model.threshold=0.5"], r"model\.threshold=otsu"),
        (["model.comparator=dynamicearth", "dynamicearth.mode=cim"],
         r"dynamicearth\.mode must be one of \['imc', 'mci'\], got 'cim'"),
        (["anychange.features=clip"], r"anychange\.features must be one of \['sam', 'dinov2'\]"),
        (["anychange.theta=200"], r"anychange\.theta must be an angle in degrees within \[0, 180\]"),
        (["amg.points_per_side=0"], r"amg\.points_per_side must be within \[1, 128\]"),
    ],
)
def test_run__bad_mask_comparator_config_is_exit_2(overrides: list[str], match: str, pair: tuple[Path, Path],
                                                   tmp_path: Path, capsys: Capsys) -> None:
    code, output = _cli(["run", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "o"), "--config", "tiny",
                         *_sets(overrides)], capsys)
    assert code == 2, output
    assert re.search(match, output), output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["model.comparator=anychange", "model.identifier=none"],
         r"model\.sam3_checkpoint is not set \(AnyChange without identifier proposes masks with SAM 3's tracker "
         r"head\); it must name a local Hugging Face model directory of SAM 3"),
        (["model.comparator=dynamicearth", "dynamicearth.mode=mci", "model.backbone_checkpoint=BACKBONE"],
         r"model\.sam3_checkpoint is not set"),
        (["model.comparator=anychange", "anychange.features=dinov2", "model.sam3_checkpoint=SAM3"],
         r"model\.backbone_checkpoint is not set; it must name the original DINOv2 weights"),
        (["model.comparator=anychange", "model.identifier=none", "model.sam_checkpoint=SAM3/missing"],
         r"model\.sam_checkpoint = .*missing' does not exist or is not a directory; it must name a local Hugging "
         r"Face model directory of the original SAM"),
    ],
)
def test_run__mask_comparator_without_weights_is_exit_2(overrides: list[str], match: str, pair: tuple[Path, Path],
                                                        tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "dino.pth").write_bytes(b"x")
    (tmp_path / "sam3").mkdir()
    sets = [s.replace("BACKBONE", str(tmp_path / "dino.pth")).replace("SAM3", str(tmp_path / "sam3"))
            for s in overrides]
    code, output = _cli(["run", str(pair[0]), str(pair[1]), "--out", str(tmp_path / "o"), *_sets(sets)], capsys)
    assert code == 2, output
    assert re.search(match, output), output


def test_mask_comparator__carries_the_sections_options() -> None:
    cfg = load_config("tiny", ["model.comparator=dynamicearth", "dynamicearth.mode=mci", "dynamicearth.theta=120",
                               "amg.points_per_side=16", "anychange.features=dinov2"])
    spec = mask_comparator(cfg)
    assert isinstance(spec, MaskComparator) and spec.name == "dynamicearth"
    assert spec.dynamicearth.angle == 120.0 and spec.generator().points_per_side == 16
    assert spec.generator().stability_score_offset == 0.9  # DynamicEarth's, with amg's left null
    assert required_checkpoints(cfg) == ("backbone_checkpoint", "sam3_checkpoint")
    anychange = load_config("tiny", ["model.comparator=anychange", "anychange.features=dinov2"])
    assert required_checkpoints(anychange) == ("sam3_checkpoint", "backbone_checkpoint")


def test_choose_threshold__ucd_scm_leaves_level_zero_out() -> None:
    hist = np.zeros(255, np.int64)
    hist[0], hist[100], hist[200] = 3000, 1000, 1000
    assert choose_threshold(hist).level == 1  # the zeros pull Otsu's level down to split them off
    assert choose_threshold(hist, ignore_zero=True).level == 101


def test_target_classes__mask_level_comparators_are_not_restricted_again() -> None:
    assert target_classes(load_config("tiny")) == (3,)
    assert target_classes(load_config("tiny", ["model.comparator=inst_ceg"])) == ()
