"""DINOv2 taps against the authors' DINOv2 (reference vectors) and their position resampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from s2c_batch.kernels.errors import CheckpointError
from s2c_batch.kernels.models.backbone import (
    BACKBONE_REGISTRY,
    DINO_SIZES,
    build_dinov2_tiny,
    resample_position_embedding,
)

REF = Path(__file__).resolve().parents[2] / "data" / "reference"
TINY = REF / "dinov2_tiny_official_layout_random.safetensors"


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return build_dinov2_tiny(TINY)


def test_dinov2_taps__reproduce_reference_features(tiny: torch.nn.Module) -> None:
    image = load_file(str(REF / "dinov2_tiny_input.safetensors"))["image"].float()
    ref = load_file(str(REF / "dinov2_tiny_features.safetensors"))
    taps = tiny(image)
    assert [t.shape for t in taps] == [torch.Size([1, 64, 36, 36])] * 4
    for tap, block in zip(taps, (2, 5, 8, 11), strict=True):
        expected = ref[f"layer_{block}"].transpose(1, 2).reshape(1, 64, 36, 36)
        torch.testing.assert_close(tap, expected, atol=1e-5, rtol=0, msg=f"block {block}")


def test_dinov2_taps__frozen(tiny: torch.nn.Module) -> None:
    tiny.train()
    assert not tiny.training
    assert not any(p.requires_grad for p in tiny.parameters())


def test_resample_position_embedding__authors_scale_factor() -> None:
    pe = torch.randn(1, 1 + 37 * 37, 8)
    out = resample_position_embedding(pe, 36)
    patch = pe[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(
        patch, scale_factor=(36.1 / 37, 36.1 / 37), mode="bicubic", antialias=False
    )
    torch.testing.assert_close(out[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 1296, 8))
    torch.testing.assert_close(out[:, :1], pe[:, :1])


def test_resample_position_embedding__same_grid_is_identity() -> None:
    pe = torch.randn(1, 1 + 36 * 36, 8)
    assert resample_position_embedding(pe, 36) is pe


def test_build_dinov2_tiny__small_input_grid() -> None:
    taps = build_dinov2_tiny(TINY, img_size=252)(torch.rand(2, 3, 252, 252))
    assert [t.shape for t in taps] == [torch.Size([2, 64, 18, 18])] * 4


def test_build_dinov2__wrong_architecture(tmp_path: Path) -> None:
    sd = {k: v.float() for k, v in load_file(str(TINY)).items()}
    sd["blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad))
    with pytest.raises(CheckpointError, match="another architecture"):
        build_dinov2_tiny(bad)


def test_build_dinov2__missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        build_dinov2_tiny(tmp_path / "absent.pth")


def test_backbone_registry__sizes_and_taps() -> None:
    assert set(BACKBONE_REGISTRY) == {"tiny", "small", "base", "large"}
    assert DINO_SIZES["large"].taps == (4, 11, 17, 23)
    assert DINO_SIZES["base"].taps == (2, 5, 8, 11)
