"""CACH as a comparator: the change probability from the head's logits.

The head itself (:mod:`s2c_batch.kernels.models.cach`) maps the two dates' DINOv2 taps
to change logits at the backbone's input size; the comparator's rule, as the authors
evaluated, resizes them to the tile bilinearly with ``align_corners=True`` and takes
``softmax(logits)[1]`` in float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def change_probability(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The change probability of CACH's logits, on the tile grid.

    Args:
        logits: ``[n, 2, S, S]`` at the backbone's input side ``S`` (any float dtype).
        size: the tile's ``(H, W)``.

    Returns:
        float32 ``[n, H, W]``: ``softmax`` over the two classes, the second.
    """
    resized = F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=True)
    return torch.softmax(resized, dim=1)[:, 1]
