"""Tests of s2c_batch.pipeline.synth.demo, the shipped demo model and ``s2c-batch demo``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.config import configs_dir
from s2c_batch.pipeline.errors import CheckpointError
from s2c_batch.pipeline.synth.demo import DEMO_SEED, format_demo, load_demo_config, run_demo

#: Seeds of scenes the demo model never saw (training used 1-24, model selection 901-902).
UNSEEN_SEEDS = (DEMO_SEED, 4242)
MAX_FILE_BYTES = 5_000_000


def test_demo_weights__shipped_small_and_found() -> None:
    cfg = load_demo_config()
    assert cfg.model.comparator == "cach" and cfg.model.identifier == "none"
    for key in ("backbone_checkpoint", "cach_checkpoint"):
        path = Path(getattr(cfg.model, key))
        assert path.is_file() and path.is_absolute()
        assert path.stat().st_size < MAX_FILE_BYTES
        assert path.parent == configs_dir() / "demo"


def test_load_demo_config__missing_weights_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"model.cach_checkpoint = .*gone.* does not exist; .*train_demo_model"):
        load_demo_config("demo", [f"model.cach_checkpoint={tmp_path / 'gone.safetensors'}"])


def test_demo_cli__refuses_a_previous_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "scene").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 4
    assert "pass --overwrite" in capsys.readouterr().err


def test_run_demo__end_to_end_scores_f1_above_0_8(tmp_path: Path) -> None:
    """The full pipeline on a LocalCluster with configs/demo.yaml, on scenes the model never saw."""
    res = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "demo"), "--size", "768", "--json",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["score"]["f1"] >= 0.8, summary["score"]
    for name in ("change_mask.tif", "change_prob.tif", "change.zarr"):
        assert Path(summary["products"][name]).exists()
    assert json.loads((tmp_path / "demo" / "score.json").read_text())["score"]["f1"] == summary["score"]["f1"]
    other = run_demo(tmp_path / "demo", size=768, seed=UNSEEN_SEEDS[1], overwrite=True, progress=False)
    assert other.score.metrics.f1 >= 0.8, other.score.metrics
    assert "F1^c" in format_demo(other)
