"""Tiny building blocks shared by the CACH modules."""

from __future__ import annotations

import torch
from torch import nn

#: GroupNorm groups used throughout CACH (every width, 48 to 96, is divisible by 8).
GROUPS = 8


def conv_norm_relu(in_channels: int, out_channels: int, *, bias: bool = True) -> nn.Sequential:
    """3x3 convolution, GroupNorm(8), ReLU: the ``γconv3x3`` of the paper.

    Args:
        in_channels: input channels.
        out_channels: output channels (a multiple of 8).
        bias: whether the convolution has a bias.

    Returns:
        ``nn.Sequential(conv, norm, relu)`` mapping ``[B, in, H, W]`` to ``[B, out, H, W]``.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
        nn.GroupNorm(GROUPS, out_channels),
        nn.ReLU(inplace=True),
    )


def double_conv_norm_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two bias-free ``conv3x3 -> GroupNorm(8) -> ReLU`` stages in one Sequential.

    The indices of the two convolutions are 0 and 3, those of the norms 1 and 4,
    matching the authors' checkpoint layout.

    Args:
        in_channels: input channels.
        out_channels: output channels of both stages.

    Returns:
        ``nn.Sequential`` mapping ``[B, in, H, W]`` to ``[B, out, H, W]``.
    """
    first = conv_norm_relu(in_channels, out_channels, bias=False)
    second = conv_norm_relu(out_channels, out_channels, bias=False)
    return nn.Sequential(*first, *second)


def tokens(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` to ``[B, H*W, C]`` (row-major token order)."""
    return x.flatten(2).transpose(1, 2)


def grid(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[B, H*W, C]`` back to ``[B, C, H, W]``."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)
