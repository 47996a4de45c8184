"""How images become the inputs of DINOv2: resized to its side, optionally ImageNet-normalised.

Inference (the tile predictors) and training (the pipeline's feature cache) prepare the
backbone's inputs with these two functions, so a head trained on cached features sees
what it sees at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_stats(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std, each ``[1, 3, 1, 1]`` on ``device``."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return mean, std


def backbone_input(x: torch.Tensor, size: int, stats: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Images in [0, 1] as the backbone takes them (inference and training alike).

    Args:
        x: float ``[n, 3, H, W]`` in [0, 1].
        size: the backbone's input side.
        stats: ``(mean, std)`` to normalise with (:func:`imagenet_stats`), or ``None``.

    Returns:
        float ``[n, 3, size, size]``: resized bilinearly with antialiasing, then normalised.
    """
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if stats is not None:
        x = (x - stats[0]) / stats[1]
    return x
