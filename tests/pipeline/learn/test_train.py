"""Tests of s2c_batch.pipeline.learn.train, the weight writers, and ``s2c-batch train``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2c_batch.kernels.checkpoints import read_state_dict
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import build_dinov2_tiny
from s2c_batch.kernels.models.cach import build_cach
from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import CheckpointError, ConfigError, InputError, OutputExistsError
from s2c_batch.pipeline.learn.evaluate import evaluate_dataset
from s2c_batch.pipeline.learn.train import TrainOptions, state_path, train_change_head
from s2c_batch.pipeline.learn.weights import FLOAT8_TYPES, compact_dtypes, save_dinov2_original, save_state_dict

from testutils import write_png

#: The tiny config's model at 252 px, change only, on the CPU, seeded random backbone.
MODEL = dataclasses.replace(load_config("tiny").model, identifier="none", device="cpu")


def synthetic_dataset(root: Path, n: int, seed: int, size: int = 64) -> Path:
    """Seeded pairs: a smooth coloured background with sensor noise at both dates; at t2 a saturated
    rectangle over 30-60 % of the image is the change (balanced classes, so a few steps suffice)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        base = np.stack([110 + 40 * np.sin(2 * np.pi * (xx * rng.uniform(1, 3) + yy * rng.uniform(1, 3)) + k)
                         for k in range(3)])
        t1 = base + rng.normal(0, 4, base.shape)
        t2 = base + rng.normal(0, 4, base.shape)
        h, w = (rng.uniform(0.55, 0.8, 2) * size).astype(int)
        r, c = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        t2[:, r : r + h, c : c + w] = rng.choice([5.0, 250.0], 3)[:, None, None]
        label = np.zeros((1, size, size), np.uint8)
        label[0, r : r + h, c : c + w] = 255
        write_png(root / "A" / f"p{i:03d}.png", np.clip(t1, 0, 255).astype(np.uint8))
        write_png(root / "B" / f"p{i:03d}.png", np.clip(t2, 0, 255).astype(np.uint8))
        write_png(root / "label" / f"p{i:03d}.png", label)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Eight training and four held-out pairs."""
    root = tmp_path_factory.mktemp("train-data")
    return synthetic_dataset(root / "train", 8, seed=1), synthetic_dataset(root / "val", 4, seed=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pairs, for the tests of files and errors (training one is cheap)."""
    return synthetic_dataset(tmp_path_factory.mktemp("small") / "ds", 2, seed=3)


def _iou(model: ModelConfig, head: Path, dataset: Path) -> float:
    cfg = load_config("tiny")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(model, cach_checkpoint=str(head)))
    return float(evaluate_dataset(dataset, cfg).metrics.iou)


def test_train_change_head__lowers_loss_and_raises_iou(datasets: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = datasets
    options = TrainOptions(epochs=6, batch_size=2, lr=1e-3, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        initial = build_cach(MODEL.backbone)  # the head train_change_head starts from
    init_file = save_state_dict(initial.state_dict(), tmp_path / "init.safetensors")
    result = train_change_head([train], tmp_path / "head.safetensors", MODEL, options, progress=False)
    assert result.epochs == 6 and len(result.history) == 6
    assert result.history[-1]["loss"] < 0.7 * result.history[0]["loss"]
    before, after = _iou(MODEL, init_file, val), _iou(MODEL, result.out, val)
    assert after > before + 0.1, (before, after)


def test_train_change_head__resume_continues_to_the_same_weights(small: Path, tmp_path: Path) -> None:
    train = small
    opts = TrainOptions(epochs=2, batch_size=1, seed=3)
    full = train_change_head([train], tmp_path / "full.safetensors", MODEL, opts, progress=False)
    part = tmp_path / "part.safetensors"
    first = train_change_head([train], part, MODEL, opts, stop_after=1, progress=False)  # "interrupted"
    assert first.epochs == 1 and torch.load(state_path(part), weights_only=True)["epoch"] == 1
    with pytest.raises(OutputExistsError, match=r"pass --resume to continue that training"):
        train_change_head([train], part, MODEL, opts, progress=False)
    resumed = train_change_head([train], part, MODEL, opts, resume=True, progress=False)
    assert resumed.epochs == 2
    assert resumed.history[0] == first.history[0]
    a, b = read_state_dict(full.out), read_state_dict(part)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_change_head__resume_refuses_other_settings(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "h.safetensors"
    train_change_head([small], out, MODEL, TrainOptions(epochs=1, batch_size=2), progress=False)
    with pytest.raises(ConfigError, match=r"written for other datasets, options or backbone"):
        train_change_head([small], out, MODEL, TrainOptions(epochs=2, batch_size=2), resume=True, progress=False)


def test_train_change_head__feature_cache_gives_the_same_head(small: Path, tmp_path: Path) -> None:
    train = small
    opts = TrainOptions(epochs=1, batch_size=2)
    plain = train_change_head([train], tmp_path / "a.safetensors", MODEL, opts, progress=False)
    cached = train_change_head([train], tmp_path / "b.safetensors", MODEL, opts, cache_dir=tmp_path / "cache",
                               progress=False)
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 4  # one file per image
    again = train_change_head([train], tmp_path / "c.safetensors", MODEL, opts, cache_dir=tmp_path / "cache",
                              progress=False)
    a, b, c = (read_state_dict(r.out) for r in (plain, cached, again))
    # one AdamW step moves each weight by at most lr: float16 features can flip a tiny gradient's sign only
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 2 * opts.lr + 1e-6
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_train_change_head__output_loads_in_the_predictor(small: Path, tmp_path: Path) -> None:
    from s2c_batch.kernels.predictors.tile import ChangePredictor

    res = train_change_head([small], tmp_path / "h.safetensors", MODEL, TrainOptions(epochs=1, batch_size=2),
                            progress=False)
    pred = ChangePredictor.from_config(dataclasses.replace(MODEL, cach_checkpoint=str(res.out)))
    out = pred.predict(np.zeros((1, 3, 64, 64), np.float32), np.ones((1, 3, 64, 64), np.float32))
    assert out.prob.shape == (1, 64, 64)


def test_train_change_head__errors(tmp_path: Path, small: Path) -> None:
    train = small
    with pytest.raises(InputError, match=r"dataset folder .*missing.* does not exist"):
        train_change_head([tmp_path / "missing"], tmp_path / "h.safetensors", MODEL, progress=False)
    with pytest.raises(ConfigError, match=r"must end in \.safetensors"):
        train_change_head([train], tmp_path / "h.pth", MODEL, progress=False)
    no_weights = dataclasses.replace(MODEL, random_init=False)
    with pytest.raises(CheckpointError, match=r"model.backbone_checkpoint is not set"):
        train_change_head([train], tmp_path / "h.safetensors", no_weights, progress=False)
    missing = dataclasses.replace(MODEL, backbone_checkpoint=str(tmp_path / "dino.pth"))
    with pytest.raises(CheckpointError, match=r"dino\.pth' does not exist"):
        train_change_head([train], tmp_path / "h.safetensors", missing, progress=False)
    with pytest.raises(ConfigError, match=r"--epochs must be >= 1"):
        TrainOptions(epochs=0)


def test_train_cli__writes_head_and_exit_codes(small: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    train = small
    out = tmp_path / "head.safetensors"
    args = ["train", str(train), "--out", str(out), "--config", "tiny", "--set", "model.identifier=none",
            "--set", "model.device=cpu", "--epochs", "1", "--batch-size", "2", "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["epochs"] == 1
    assert out.is_file() and state_path(out).is_file()
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 4
    assert "pass --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path / "nothing"), "--out", str(out), "--config", "tiny"])
    assert exc.value.code == 3


def test_save_dinov2_original__loads_as_a_backbone_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_dinov2_tiny(img_size=252)
    path = save_dinov2_original(model.vit, tmp_path / "dino.safetensors", dtype=torch.float16)
    loaded = build_dinov2_tiny(path, img_size=252)
    x = torch.rand(1, 3, 252, 252)
    assert all(torch.allclose(a, b, atol=2e-2) for a, b in zip(model(x), loaded(x), strict=True))


def test_compact_dtypes__fits_the_budget() -> None:
    torch.manual_seed(0)
    sd = build_cach("tiny").state_dict()
    floats = sum(v.numel() for v in sd.values() if v.is_floating_point())
    budget = int(floats * 1.5)
    choice = compact_dtypes(sd, budget_bytes=budget)
    size = sum(v.numel() * torch.empty((), dtype=choice.get(k, v.dtype)).element_size() for k, v in sd.items())
    assert size <= budget
    assert torch.float16 in choice.values() and set(choice.values()) & set(FLOAT8_TYPES)
    with pytest.raises(ValueError, match=r"even in 8-bit floats"):
        compact_dtypes(sd, budget_bytes=floats // 2)


def test_train_change_head__train_backbone_writes_a_matching_pair(small: Path, tmp_path: Path) -> None:
    """The demo-only deviation: backbone trained too, written in the original layout beside the head."""
    from s2c_batch.kernels.predictors.tile import ChangePredictor

    opts = TrainOptions(epochs=2, batch_size=2, train_backbone=True)
    res = train_change_head([small], tmp_path / "h.safetensors", MODEL, opts, val=[small],
                            backbone_out=tmp_path / "dino.safetensors", progress=False)
    assert res.backbone_out is not None and res.backbone_out.is_file()
    assert (tmp_path / "h.last.safetensors").is_file() and (tmp_path / "dino.last.safetensors").is_file()
    assert "mask_token" in read_state_dict(res.backbone_out)
    pred = ChangePredictor.from_config(dataclasses.replace(
        MODEL, backbone_checkpoint=str(res.backbone_out), cach_checkpoint=str(res.out), random_init=False))
    assert pred.predict(np.zeros((1, 3, 64, 64), np.float32), np.ones((1, 3, 64, 64), np.float32)).prob.shape == (
        1, 64, 64)
    with pytest.raises(ConfigError, match=r"train_backbone needs backbone_out and cannot cache features"):
        train_change_head([small], tmp_path / "x.safetensors", MODEL, opts, cache_dir=tmp_path / "c",
                          backbone_out=tmp_path / "d.safetensors", progress=False)
