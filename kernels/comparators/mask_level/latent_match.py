"""Bitemporal latent matching (AnyChange, Zheng et al. 2024; reused by DynamicEarth).

For a mask ``m`` (of either date) and feature maps ``F1``, ``F2`` of the two dates, both
upsampled to the tile: ``c(m) = -cos(mean_m F1, mean_m F2)``. The mask is changed when
``c(m) > cos(theta)``, i.e. when the angle between its two mean features exceeds
``180 - theta`` degrees (25 at the release's theta 155).

The products need a probability. :func:`confidence_probability` maps ``c`` in [-1, 1]
monotonically and piecewise linearly onto [0, 1] with ``cos(theta)`` at 0.5, so that
``p > 0.5`` (the default ``model.threshold``) is exactly the release's decision, and a
user who moves the threshold moves ``theta``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from s2c_batch.kernels.comparators.mask_level.masks import mask_means

#: The least float32 above 0.5.
_ABOVE_HALF = float(torch.nextafter(torch.tensor(0.5), torch.tensor(1.0)))


def angle_cosine(theta: float) -> float:
    """``cos(theta)`` of an angle in degrees (the releases' ``angle2cosine``).

    Example:
        >>> round(angle_cosine(155.0), 6)
        -0.906308
    """
    return math.cos(math.radians(theta))


def change_confidence(features_t1: torch.Tensor, features_t2: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``-cos`` of each mask's mean features at t1 and t2.

    Args:
        features_t1: float ``[C, h, w]`` (a token grid, upsampled to the masks bilinearly
            with ``align_corners=True`` by :func:`~s2c_batch.kernels.comparators.mask_level.masks.mask_means`).
        features_t2: float ``[C, h, w]``.
        masks: bool ``[n, H, W]``.

    Returns:
        float32 ``[n]`` in [-1, 1].
    """
    m1 = mask_means(features_t1, masks)
    m2 = mask_means(features_t2, masks)
    return -F.cosine_similarity(m1, m2, dim=1, eps=1e-8)


def changed(confidence: torch.Tensor, theta: float) -> torch.Tensor:
    """The release's decision: ``confidence > cos(theta)`` (bool, the shape of ``confidence``)."""
    return confidence > angle_cosine(theta)


def confidence_probability(confidence: torch.Tensor, theta: float) -> torch.Tensor:
    """Change confidence in [-1, 1] mapped to a probability with ``cos(theta)`` at 0.5.

    ``p = (c + 1) / (c0 + 1) / 2`` up to ``c0 = cos(theta)``, then
    ``p = 1/2 + (c - c0) / (1 - c0) / 2``: monotone, ``p > 0.5`` exactly when ``c > c0``.

    Example:
        >>> confidence_probability(torch.tensor([-1.0, 0.0, 1.0]), 90.0).tolist()
        [0.0, 0.5, 1.0]
    """
    c0 = angle_cosine(theta)
    c = confidence.float().clamp(-1.0, 1.0)
    low = 0.5 * (c + 1.0) / max(c0 + 1.0, 1e-12)
    high = 0.5 + 0.5 * (c - c0) / max(1.0 - c0, 1e-12)
    # a changed mask stays above 0.5 in float32 (rounding when c is just above c0)
    return torch.where(c > c0, high.clamp(min=_ABOVE_HALF, max=1.0), low.clamp(min=0.0, max=0.5))
