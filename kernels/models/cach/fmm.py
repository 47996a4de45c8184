"""FMM: the feature mapping module that turns four same-size ViT taps into a pyramid.

Each of the four DINOv2 taps (all at the token grid ``g``, e.g. 36 for a 504
input) goes through a per-date 1x1 adapter to a level width (48, 64, 80, 96),
then through a resampler shared by both dates that puts level ``i`` at stride
``4 / 2**i`` of the grid: ``4g, 2g, g, g/2`` (144, 72, 36, 18 for g = 36).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Channels of the four pyramid levels of the authors' head.
LEVEL_CHANNELS: tuple[int, int, int, int] = (48, 64, 80, 96)


def _resampler(level: int, channels: int) -> nn.Module:
    """The shared resampler of one level: x4 and x2 transposed convs, identity, stride-2 conv."""
    if level == 0:
        return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=4)
    if level == 1:
        return nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
    if level == 2:
        return nn.Identity()
    return nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)


class FMM(nn.Module):
    """Per-date 1x1 adapters plus shared resamplers: ViT taps to a 4-level pyramid."""

    def __init__(
        self,
        *,
        in_channels: int = 768,
        level_channels: Sequence[int] = LEVEL_CHANNELS,
    ) -> None:
        """Build the module.

        Args:
            in_channels: channels of each backbone tap (768 for DINOv2-B).
            level_channels: output channels of the four levels.
        """
        super().__init__()
        if len(level_channels) != 4:
            raise ValueError(f"FMM needs 4 level widths, got {tuple(level_channels)!r}")
        self.level_channels = tuple(int(c) for c in level_channels)
        self.adapters_t1 = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in self.level_channels)
        self.adapters_t2 = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in self.level_channels)
        self.resamplers = nn.ModuleList(_resampler(i, c) for i, c in enumerate(self.level_channels))

    def forward(
        self, feats_t1: Sequence[torch.Tensor], feats_t2: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Map the taps of both dates to pyramids.

        Args:
            feats_t1: four taps of t1, each ``[B, in_channels, g, g]``.
            feats_t2: four taps of t2, same shapes.

        Returns:
            ``(pyramid_t1, pyramid_t2)``: each a list of four ``[B, C_i, s_i, s_i]``
            with ``C_i = level_channels[i]`` and ``s = 4g, 2g, g, g/2``.
        """
        if len(feats_t1) != 4 or len(feats_t2) != 4:
            raise ValueError(f"FMM needs 4 taps per date, got {len(feats_t1)} and {len(feats_t2)}")
        pyramid_t1: list[torch.Tensor] = []
        pyramid_t2: list[torch.Tensor] = []
        for level, (f1, f2) in enumerate(zip(feats_t1, feats_t2, strict=True)):
            a = self.adapters_t1[level](f1)
            b = self.adapters_t2[level](f2)
            # One call for both dates: the resampler is shared.
            both = self.resamplers[level](torch.cat([a, b], dim=0))
            ra, rb = both.split(a.shape[0], dim=0)
            pyramid_t1.append(ra)
            pyramid_t2.append(rb)
        return pyramid_t1, pyramid_t2
