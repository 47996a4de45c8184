"""ResUp: the DPT-style refinement upsampler of CACH with its prediction heads.

The four levels (``4g, 2g, g, g/2``) are projected to ``hidden`` channels by 3x3
convolutions, then fused coarse to fine by RefineNet blocks (residual conv
units, bilinear x2 with ``align_corners=True``, 1x1 output conv)::

    path3 = fuse3(p3)           -> size of p2
    path2 = fuse2(path3, p2)    -> size of p1
    path1 = fuse1(path2, p1)    -> size of p0
    out   = fuse0(path1, p0)    -> 2 x size of p0 (8g: 288 for g = 36)

The main head (conv3x3, ReLU, conv1x1) gives the change logits; three 1x1 side
heads sit on ``path1..3`` and two 1x1 heads on the same upsampler run over the
t1-only and t2-only pyramids (training outputs). Every head is resized to the
output size bilinearly with ``align_corners=False``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with two biased 3x3 convolutions."""

    def __init__(self, *, channels: int) -> None:
        """Build the unit.

        Args:
            channels: input and output channels.
        """
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit to ``[B, C, H, W]``; returns the same shape."""
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """RefineNet fusion: add a refined skip, refine, upsample, 1x1 conv."""

    def __init__(self, *, channels: int) -> None:
        """Build the block.

        Args:
            channels: channels of both inputs and the output.
        """
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels=channels)
        self.unit = ResidualConvUnit(channels=channels)
        self.out_conv = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, *, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Fuse and upsample.

        Args:
            x: coarser path ``[B, C, h, w]``.
            skip: same-size lateral features ``[B, C, h, w]``, or None for the deepest block
                (whose ``skip_unit`` then stays unused, as in the authors' head).
            size: output ``(H, W)``; None doubles the input size.

        Returns:
            ``[B, C, H, W]``.
        """
        if skip is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class ResUp(nn.Module):
    """Projection, four fusion blocks and the prediction heads of CACH."""

    def __init__(
        self,
        *,
        level_channels: Sequence[int] = (48, 64, 80, 96),
        hidden_dim: int = 64,
        num_classes: int = 2,
    ) -> None:
        """Build the module.

        Args:
            level_channels: channels of the four input levels.
            hidden_dim: channels of the fusion path.
            num_classes: output classes (2: unchanged, changed).
        """
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, hidden_dim, kernel_size=3, padding=1) for c in level_channels)
        self.fusion = nn.ModuleList(FusionBlock(channels=hidden_dim) for _ in level_channels)
        self.head = nn.Sequential(
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, num_classes, kernel_size=1),
        )
        #: Side heads on path1, path2, path3 (in that order).
        self.side_heads = nn.ModuleList(nn.Conv2d(hidden_dim, num_classes, kernel_size=1) for _ in range(3))
        self.head_t1 = nn.Conv2d(hidden_dim, num_classes, kernel_size=1)
        self.head_t2 = nn.Conv2d(hidden_dim, num_classes, kernel_size=1)

    def upsample(self, pyramid: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the projection and fusion path.

        Args:
            pyramid: four levels ``[B, C_i, s_i, s_i]`` (``s = 4g, 2g, g, g/2``).

        Returns:
            ``(out, [path1, path2, path3])`` with ``out`` ``[B, hidden, 8g, 8g]`` and
            ``path_i`` ``[B, hidden, s_{i-1}, s_{i-1}]``.
        """
        p = [proj(level) for proj, level in zip(self.project, pyramid, strict=True)]
        path3 = self.fusion[3](p[3], size=p[2].shape[2:])
        path2 = self.fusion[2](path3, p[2], size=p[1].shape[2:])
        path1 = self.fusion[1](path2, p[1], size=p[0].shape[2:])
        out = self.fusion[0](path1, p[0])
        return out, [path1, path2, path3]

    @staticmethod
    def _resize(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)

    def change_logits(self, diff_pyramid: Sequence[torch.Tensor], *, size: Sequence[int]) -> torch.Tensor:
        """The change logits alone (inference).

        Args:
            diff_pyramid: the four refined difference levels.
            size: output ``(H, W)``.

        Returns:
            ``[B, num_classes, H, W]``.
        """
        out, _ = self.upsample(diff_pyramid)
        return self._resize(self.head(out), size)

    def all_logits(
        self,
        diff_pyramid: Sequence[torch.Tensor],
        pyramid_t1: Sequence[torch.Tensor],
        pyramid_t2: Sequence[torch.Tensor],
        *,
        size: Sequence[int],
    ) -> tuple[torch.Tensor, ...]:
        """Every output (training).

        Args:
            diff_pyramid: the four refined difference levels.
            pyramid_t1: the four FMM levels of t1.
            pyramid_t2: the four FMM levels of t2.
            size: output ``(H, W)``.

        Returns:
            ``(change, side1, side2, side3, single_t1, single_t2)``, each
            ``[B, num_classes, H, W]``.
        """
        out, paths = self.upsample(diff_pyramid)
        change = self._resize(self.head(out), size)
        sides = [self._resize(head(path), size) for head, path in zip(self.side_heads, paths, strict=True)]
        batch = pyramid_t1[0].shape[0]
        both, _ = self.upsample([torch.cat([a, b], dim=0) for a, b in zip(pyramid_t1, pyramid_t2, strict=True)])
        out_t1, out_t2 = both.split(batch, dim=0)
        single_t1 = self._resize(self.head_t1(out_t1), size)
        single_t2 = self._resize(self.head_t2(out_t2), size)
        return (change, *sides, single_t1, single_t2)
