"""CACH: the category-agnostic change head of Seg2Change (FMM -> BDFM -> EDQA -> ResUp)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple, overload

import torch
from torch import nn

from s2c_batch.kernels.models.cach.bdfm import BDFM
from s2c_batch.kernels.models.cach.edqa import EDQA
from s2c_batch.kernels.models.cach.fmm import FMM, LEVEL_CHANNELS
from s2c_batch.kernels.models.cach.resup import ResUp


class CACHOutputs(NamedTuple):
    """All outputs of CACH (training); each ``[B, num_classes, H, W]``.

    Attributes:
        change: change logits of the main head.
        side1: side head on fusion path 1 (finest).
        side2: side head on fusion path 2.
        side3: side head on fusion path 3 (coarsest).
        single_t1: the upsampler run on the t1-only pyramid.
        single_t2: the upsampler run on the t2-only pyramid.
    """

    change: torch.Tensor
    side1: torch.Tensor
    side2: torch.Tensor
    side3: torch.Tensor
    single_t1: torch.Tensor
    single_t2: torch.Tensor


class CACH(nn.Module):
    """The change head on two pyramids of four same-size ViT taps.

    Defaults equal the authors' ``CHead_FPN_FDR(in_channels=768, hidden_dim=64,
    nclass=2)``: 3,949,248 parameters. Load their checkpoints with
    :func:`s2c_batch.kernels.models.cach.convert_official_state_dict`.
    """

    def __init__(
        self,
        *,
        in_channels: int = 768,
        hidden_dim: int = 64,
        num_classes: int = 2,
        level_channels: Sequence[int] = LEVEL_CHANNELS,
        num_heads: int = 8,
        window: int = 9,
        num_experts: int = 4,
        patch_size: int = 14,
    ) -> None:
        """Build the head.

        Args:
            in_channels: channels of each backbone tap (384 / 768 / 1024 for DINOv2 S / B / L).
            hidden_dim: channels of the upsampling path.
            num_classes: output classes (2: unchanged, changed).
            level_channels: channels of the four pyramid levels.
            num_heads: attention heads of EDQA.
            window: EDQA window side.
            num_experts: experts of the EDQA FFN.
            patch_size: backbone patch size; the output side is ``patch_size * g``
                for a token grid ``g`` (504 for DINOv2/14 at 36x36).
        """
        super().__init__()
        self.patch_size = patch_size
        self.fmm = FMM(in_channels=in_channels, level_channels=level_channels)
        self.bdfm = nn.ModuleList(BDFM(channels=c) for c in level_channels)
        self.edqa = nn.ModuleList(
            EDQA(channels=c, num_heads=num_heads, window=window, num_experts=num_experts) for c in level_channels
        )
        self.resup = ResUp(level_channels=level_channels, hidden_dim=hidden_dim, num_classes=num_classes)

    @overload
    def forward(
        self,
        feats_t1: Sequence[torch.Tensor],
        feats_t2: Sequence[torch.Tensor],
        *,
        return_aux: Literal[False] = False,
    ) -> torch.Tensor: ...

    @overload
    def forward(
        self,
        feats_t1: Sequence[torch.Tensor],
        feats_t2: Sequence[torch.Tensor],
        *,
        return_aux: Literal[True],
    ) -> CACHOutputs: ...

    def forward(
        self,
        feats_t1: Sequence[torch.Tensor],
        feats_t2: Sequence[torch.Tensor],
        *,
        return_aux: bool = False,
    ) -> torch.Tensor | CACHOutputs:
        """Change logits of a batch of pairs.

        Args:
            feats_t1: four taps of t1, each ``[B, in_channels, g, g]`` with ``g`` a
                multiple of 18 (36 for a 504 input).
            feats_t2: four taps of t2, same shapes.
            return_aux: also compute the side and single-date outputs (training).

        Returns:
            Change logits ``[B, num_classes, 14g, 14g]``, or with ``return_aux`` a
            :class:`CACHOutputs` of six such tensors.
        """
        pyramid_t1, pyramid_t2 = self.fmm(feats_t1, feats_t2)
        diffs = []
        for bdfm, edqa, a, b in zip(self.bdfm, self.edqa, pyramid_t1, pyramid_t2, strict=True):
            diffs.append(edqa(bdfm(a, b), a, b))
        g = feats_t1[2].shape[-2:]
        size = (self.patch_size * g[0], self.patch_size * g[1])
        if not return_aux:
            return self.resup.change_logits(diffs, size=size)
        return CACHOutputs(*self.resup.all_logits(diffs, pyramid_t1, pyramid_t2, size=size))


#: Tap widths of the DINOv2 sizes the head is built for.
CACH_IN_CHANNELS: dict[str, int] = {"tiny": 64, "small": 384, "base": 768, "large": 1024}


def build_cach(size: str = "base") -> CACH:
    """The authors' head for a backbone size.

    Args:
        size: ``tiny``, ``small``, ``base`` (the paper) or ``large``.

    Returns:
        A randomly initialised :class:`CACH` whose ``in_channels`` fits that backbone.
    """
    if size not in CACH_IN_CHANNELS:
        raise ValueError(f"unknown backbone size {size!r}; expected one of {sorted(CACH_IN_CHANNELS)}")
    return CACH(in_channels=CACH_IN_CHANNELS[size])
