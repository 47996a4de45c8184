"""BDFM: the bi-temporal difference feature module (the authors' ``MDFM``).

With ``γ`` = GroupNorm(8) + ReLU after a 3x3 convolution::

    att  = sigmoid(conv3x3_nobias(|x1 - x2|))
    x_t  = γconv3x3_t(x_t * att + x_t)          t = 1, 2 (separate convolutions)
    D    = γconv3x3_nobias(γconv3x3(cat(x1, x2)) * att)
"""

from __future__ import annotations

import torch
from torch import nn

from s2c_batch.kernels.models.cach.common import conv_norm_relu


class BDFM(nn.Module):
    """Difference features of one pyramid level, gated by a learned change attention."""

    def __init__(self, *, channels: int) -> None:
        """Build the module.

        Args:
            channels: channels of the level (input and output), a multiple of 8.
        """
        super().__init__()
        self.diff_attention = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.enhance_t1 = conv_norm_relu(channels, channels)
        self.enhance_t2 = conv_norm_relu(channels, channels)
        self.fuse = conv_norm_relu(2 * channels, channels)
        self.reduce = conv_norm_relu(channels, channels, bias=False)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Difference features.

        Args:
            x1: t1 level features ``[B, C, H, W]``.
            x2: t2 level features ``[B, C, H, W]``.

        Returns:
            ``D``: ``[B, C, H, W]``.
        """
        att = torch.sigmoid(self.diff_attention(torch.abs(x1 - x2)))
        e1 = self.enhance_t1(x1 * att + x1)
        e2 = self.enhance_t2(x2 * att + x2)
        fused = self.fuse(torch.cat([e1, e2], dim=1))
        return self.reduce(fused * att)
