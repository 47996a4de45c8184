"""DCVA: deep change vector analysis (Saha et al. 2019, IEEE TGRS 57(6)) on the frozen DINOv2 taps.

Saha et al. compare the two dates in the feature space of a pretrained CNN: per layer,
the difference of the two dates' features; in each layer the features whose
difference varies most over the scene are kept; the change magnitude is the norm of
the kept differences, thresholded by Otsu. Here the features are the four taps of the
DINOv2 backbone the model already loads (the original used an ImageNet VGG/ResNet):

1. per tap ``l`` in ``dcva.layers``: ``D_l = f_l(t2) - f_l(t1)`` on the token grid
   ``[C_l, g, g]`` of each tile (resized to the backbone's input, as for CACH);
2. fit: on a spread set of tiles, the variance of each channel of ``D_l`` over the
   tokens of valid pixels; the ``dcva.features`` fraction of channels with the largest
   variance is kept, each divided by its standard deviation so that the layers weigh
   alike;
3. ``s = sqrt(sum_l sum_kept (D_lc / sigma_lc)^2)`` on the token grid, resized to the tile
   bilinearly (``align_corners=True``; the original upsampled the features before the
   norm, which costs ``kept`` full-size maps per tile), ``p = min(1, s / s_ref)`` with
   ``s_ref`` a high percentile of ``s`` over the fit tiles' valid pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def tap_differences(taps_t1: Sequence[torch.Tensor], taps_t2: Sequence[torch.Tensor],
                    layers: Sequence[int]) -> list[torch.Tensor]:
    """``f_l(t2) - f_l(t1)`` of the chosen taps, in float32.

    Args:
        taps_t1: the backbone's four taps of t1, each ``[n, C, g, g]``.
        taps_t2: of t2.
        layers: tap indexes (0-3).

    Returns:
        One ``[n, C, g, g]`` per layer.
    """
    return [taps_t2[i].float() - taps_t1[i].float() for i in layers]


def token_validity(valid: torch.Tensor, grid: int) -> torch.Tensor:
    """Tokens whose pixels are mostly valid: bool ``[n, g, g]`` from bool ``[n, H, W]``."""
    frac = F.adaptive_avg_pool2d(valid[:, None].float(), grid)[:, 0]
    return frac >= 0.5


@dataclass(frozen=True)
class ChannelSums:
    """Per-layer, per-channel sums of differences over valid tokens (one part of the fit).

    Attributes:
        count: valid tokens.
        s1: per layer, float64 ``[C_l]`` sums.
        s2: per layer, float64 ``[C_l]`` sums of squares.
    """

    count: int
    s1: tuple[np.ndarray, ...]
    s2: tuple[np.ndarray, ...]


def channel_sums(diffs: Sequence[torch.Tensor], tokens: torch.Tensor) -> ChannelSums:
    """Sums of each layer's difference channels over the valid tokens.

    Args:
        diffs: per layer ``[n, C, g, g]``.
        tokens: bool ``[n, g, g]``.
    """
    s1, s2 = [], []
    for d in diffs:
        v = d.permute(1, 0, 2, 3)[:, tokens].double()  # [C, tokens]
        s1.append(v.sum(dim=1).cpu().numpy())
        s2.append((v * v).sum(dim=1).cpu().numpy())
    return ChannelSums(int(tokens.sum()), tuple(s1), tuple(s2))


@dataclass(frozen=True)
class DCVA:
    """DCVA with its fitted selection.

    Attributes:
        layers: tap indexes.
        channels: per layer, the kept channel indexes.
        scales: per layer, the kept channels' standard deviations.
        reference: ``s_ref``.
    """

    layers: tuple[int, ...]
    channels: tuple[tuple[int, ...], ...]
    scales: tuple[tuple[float, ...], ...]
    reference: float = 1.0
    name: str = "dcva"

    def magnitude(self, diffs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``s`` on the token grid: float32 ``[n, g, g]`` from the layers' differences."""
        total = torch.zeros_like(diffs[0][:, 0])
        for d, idx, scale in zip(diffs, self.channels, self.scales, strict=True):
            kept = d[:, list(idx)] / torch.tensor(scale, dtype=d.dtype, device=d.device).view(1, -1, 1, 1)
            total = total + (kept * kept).sum(dim=1)
        return total.sqrt()

    def upsampled(self, diffs: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """``s`` resized to the tiles: float32 ``[n, H, W]``."""
        s = self.magnitude(diffs)[:, None]
        return F.interpolate(s, size=tuple(size), mode="bilinear", align_corners=True)[:, 0]

    def probability(self, diffs: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """``min(1, s / s_ref)``: float32 ``[n, H, W]``."""
        return (self.upsampled(diffs, size) / self.reference).clamp_(max=1.0)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {"comparator": self.name, "layers": list(self.layers), "channels": [list(c) for c in self.channels],
                "scales": [list(s) for s in self.scales], "reference": self.reference}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DCVA:
        """Inverse of :meth:`to_json`."""
        return cls(layers=tuple(int(v) for v in data["layers"]),
                   channels=tuple(tuple(int(v) for v in c) for c in data["channels"]),
                   scales=tuple(tuple(float(v) for v in s) for s in data["scales"]),
                   reference=float(data["reference"]))


def select_channels(parts: Sequence[ChannelSums], layers: Sequence[int], fraction: float) -> DCVA:
    """The most variant channels of each layer over the fit tiles (``reference`` still 1).

    Args:
        parts: the fit tiles' sums.
        layers: tap indexes, in the order of the sums.
        fraction: share of each layer's channels to keep (at least one).

    Raises:
        ValueError: no valid token in the fit tiles.
    """
    count = sum(p.count for p in parts)
    if count < 2:
        raise ValueError(f"the DCVA fit tiles hold {count} valid token(s); raise dcva.fit_tiles or check nodata")
    channels, scales = [], []
    for li in range(len(layers)):
        s1 = np.sum([p.s1[li] for p in parts], axis=0)
        s2 = np.sum([p.s2[li] for p in parts], axis=0)
        var = np.maximum(s2 / count - (s1 / count) ** 2, 0.0)
        keep = max(1, round(fraction * len(var)))
        order = np.argsort(-var, kind="stable")[:keep]
        order = np.sort(order)
        channels.append(tuple(int(i) for i in order))
        scales.append(tuple(float(np.sqrt(var[i])) if var[i] > 0 else 1.0 for i in order))
    return DCVA(layers=tuple(layers), channels=tuple(channels), scales=tuple(scales))
