"""Frozen DINOv2 feature taps through timm, with the authors' position-embedding resampling.

Seg2Change's CACH reads the outputs of four blocks of a frozen DINOv2 ViT/14
(blocks 2, 5, 8, 11 for small/base; 4, 11, 17, 23 for large), each passed
through the final LayerNorm, CLS token dropped, at a 504x504 input (36x36
tokens). The released ``dinov2_vit*14_pretrain.pth`` files hold a 37x37
position grid (518 input); the authors' code resamples it bicubically, without
antialiasing, by the scale factor ``(g + 0.1) / 37`` for a ``g x g`` grid.
timm's own resampling differs (up to 0.04 in the features), so we resample the
checkpoint ourselves before timm's DINOv2 key filter sees it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

from s2c_batch.kernels.checkpoints import load_exact, read_state_dict
from s2c_batch.kernels.errors import CheckpointError

#: Offset the authors add to the target grid when resampling position embeddings.
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class DinoSize:
    """Architecture of one DINOv2 size.

    Attributes:
        timm_name: timm model name (patch 14, LayerScale, MLP FFN).
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        taps: 0-based blocks whose outputs are returned.
    """

    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    taps: tuple[int, int, int, int]


#: The sizes; ``tiny`` is a 64-wide test model with the base layout (reference vectors).
DINO_SIZES: dict[str, DinoSize] = {
    "tiny": DinoSize("vit_base_patch14_dinov2", 64, 12, 4, (2, 5, 8, 11)),
    "small": DinoSize("vit_small_patch14_dinov2", 384, 12, 6, (2, 5, 8, 11)),
    "base": DinoSize("vit_base_patch14_dinov2", 768, 12, 12, (2, 5, 8, 11)),
    "large": DinoSize("vit_large_patch14_dinov2", 1024, 24, 16, (4, 11, 17, 23)),
}


def resample_position_embedding(
    pos_embed: torch.Tensor, grid: int, *, offset: float = INTERPOLATE_OFFSET
) -> torch.Tensor:
    """Resample a DINOv2 position embedding to a ``grid x grid`` token grid, as the authors do.

    Bicubic, no antialias, ``scale_factor = (grid + offset) / sqrt(N)``, computed in float32.

    Args:
        pos_embed: ``[1, 1 + N, C]`` with a square grid of ``N`` patch positions after the CLS one.
        grid: target side in tokens.
        offset: the authors' interpolation offset (0.1).

    Returns:
        ``[1, 1 + grid**2, C]`` in the input dtype (the CLS entry unchanged).
    """
    n = pos_embed.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise CheckpointError(f"pos_embed holds {n} patch positions, not a square grid")
    if side == grid:
        return pos_embed
    dtype = pos_embed.dtype
    pe = pos_embed.float()
    channels = pe.shape[-1]
    patch = pe[:, 1:].reshape(1, side, side, channels).permute(0, 3, 1, 2)
    scale = (grid + offset) / math.sqrt(n)
    patch = F.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if patch.shape[-2:] != (grid, grid):
        raise CheckpointError(f"resampling {side}x{side} positions gave {tuple(patch.shape[-2:])}, not {grid}x{grid}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, channels)
    return torch.cat([pe[:, :1], patch], dim=1).to(dtype)


class DinoV2Taps(nn.Module):
    """A frozen DINOv2 returning four normalised block outputs as NCHW maps."""

    def __init__(
        self,
        *,
        timm_name: str = "vit_base_patch14_dinov2",
        img_size: int = 504,
        taps: Sequence[int] = (2, 5, 8, 11),
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
    ) -> None:
        """Build the model (random weights; see :meth:`load_official_state_dict`).

        Args:
            timm_name: timm DINOv2 model name.
            img_size: input side in pixels, a multiple of 14.
            taps: 0-based blocks to return.
            embed_dim: override the width (tests).
            depth: override the depth.
            num_heads: override the heads.
        """
        super().__init__()
        if img_size % 14:
            raise ValueError(f"img_size must be a multiple of the patch size 14, got {img_size}")
        overrides: dict[str, Any] = {
            k: v for k, v in (("embed_dim", embed_dim), ("depth", depth), ("num_heads", num_heads)) if v
        }
        vit = timm.create_model(timm_name, pretrained=False, img_size=img_size, num_classes=0, **overrides)
        if not isinstance(vit, VisionTransformer):
            raise ValueError(f"timm model {timm_name!r} is not a VisionTransformer; name a DINOv2 ViT")
        self.vit = vit
        self.img_size = img_size
        self.grid = img_size // 14
        self.taps = tuple(int(t) for t in taps)
        self.embed_dim = self.vit.embed_dim
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> DinoV2Taps:
        """Stay in eval mode: the backbone is frozen."""
        return super().train(False)

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor], *, source: str = "checkpoint") -> None:
        """Load weights in the original DINOv2 layout (``dinov2_vit*14_pretrain.pth``).

        Args:
            state_dict: the original tensors (any float dtype; cast to float32 first).
            source: what to name in errors.

        Raises:
            CheckpointError: the tensors do not fit this architecture.
        """
        # float32 before resampling: float16 files must not round the resampled grid.
        sd = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
        if "pos_embed" not in sd or "mask_token" not in sd:
            raise CheckpointError(f"{source} is not an original DINOv2 checkpoint (no pos_embed / mask_token)")
        sd["pos_embed"] = resample_position_embedding(sd["pos_embed"], self.grid)
        sd = checkpoint_filter_fn(sd, self.vit)
        load_exact(self.vit, sd, source=source)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature taps, without gradients (the frozen backbone of inference).

        Args:
            images: ``[B, 3, img_size, img_size]``, normalised as the caller decides.

        Returns:
            Four maps ``[B, embed_dim, g, g]`` (``g = img_size / 14``).
        """
        return self.taps_of(images)

    def taps_of(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature taps under the caller's grad mode (training a backbone too); see :meth:`forward`."""
        taps = self.vit.forward_intermediates(
            images,
            indices=list(self.taps),
            output_fmt="NCHW",
            intermediates_only=True,
            norm=True,
            stop_early=True,
        )
        return cast(list[torch.Tensor], taps)  # intermediates_only=True returns the list alone


def _build(size: str, checkpoint: str | Path | None, img_size: int) -> DinoV2Taps:
    spec = DINO_SIZES[size]
    model = DinoV2Taps(
        timm_name=spec.timm_name,
        img_size=img_size,
        taps=spec.taps,
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_heads=spec.num_heads,
    )
    if checkpoint is not None:
        source = f"DINOv2-{size} checkpoint {str(checkpoint)!r}"
        model.load_official_state_dict(read_state_dict(checkpoint), source=source)
    return model


def build_dinov2_tiny(checkpoint: str | Path | None = None, *, img_size: int = 504) -> DinoV2Taps:
    """64-wide, 12-block, 4-head DINOv2 (tests; the layout of the reference vectors)."""
    return _build("tiny", checkpoint, img_size)


def build_dinov2_vits14(checkpoint: str | Path | None = None, *, img_size: int = 504) -> DinoV2Taps:
    """DINOv2 ViT-S/14, taps [2, 5, 8, 11]."""
    return _build("small", checkpoint, img_size)


def build_dinov2_vitb14(checkpoint: str | Path | None = None, *, img_size: int = 504) -> DinoV2Taps:
    """DINOv2 ViT-B/14, taps [2, 5, 8, 11] (the paper)."""
    return _build("base", checkpoint, img_size)


def build_dinov2_vitl14(checkpoint: str | Path | None = None, *, img_size: int = 504) -> DinoV2Taps:
    """DINOv2 ViT-L/14, taps [4, 11, 17, 23]."""
    return _build("large", checkpoint, img_size)


#: Builders by ``model.backbone`` size; each takes ``(checkpoint=None, *, img_size=504)``.
BACKBONE_REGISTRY: dict[str, Callable[..., DinoV2Taps]] = {
    "tiny": build_dinov2_tiny,
    "small": build_dinov2_vits14,
    "base": build_dinov2_vitb14,
    "large": build_dinov2_vitl14,
}
