"""The point-grid automatic mask generator: class-agnostic proposals from a promptable segmenter.

AnyChange's ``SimpleMaskGenerator`` and DynamicEarth's mask proposal run SAM's
automatic mask generator on one crop (the whole image): a regular grid of points, each
prompted alone with three mask outputs, then:

1. keep a mask when its predicted IoU is above ``pred_iou_thresh`` (0.5);
2. its stability score (IoU of the mask at logit thresholds ``+offset`` and ``-offset``)
   at least ``stability_score_thresh`` (0.95);
3. binarise at logit 0; box NMS (``box_nms_thresh`` 0.7) ranked by predicted IoU over all
   points; (the release also drops boxes near a crop edge that is not an image edge: with
   the whole image as the crop there is none);
4. drop masks covering ``max_area`` (0.8) of the image or more (the releases do this
   right after the generator).

``transformers`` 5 has this as the ``mask-generation`` pipeline and
``Sam3ImageProcessor.filter_masks`` / ``post_process_for_mask_generation``. They are not
used here: the pipeline takes PIL images and runs the vision encoder itself (we share one
SAM 3 pass between the identifier and the proposals), ``filter_masks`` keeps a stability
score *above* the threshold where the releases keep it at or above, and converts every
mask to RLE and back; and neither drops large masks.

The segmenter is any :data:`PointPrompter`: SAM 3's tracker head, original SAM, or a
stand-in with known masks (the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s2c_batch.kernels.comparators.mask_level.masks import MaskSet, areas, box_nms, count

#: Points ``[P, 2]`` ``(x, y)`` as fractions of the image's width and height -> mask logits
#: ``[P, M, h, w]`` (any resolution; resized to the image here) and predicted IoU ``[P, M]``.
PointPrompter = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class MaskGeneratorSettings:
    """The generator's settings (``amg`` config section with the offset resolved).

    Attributes:
        points_per_side: grid points along each side.
        points_per_batch: points prompted at once.
        pred_iou_thresh: predicted IoU a mask must exceed.
        stability_score_thresh: stability score a mask must reach.
        stability_score_offset: logit offset of the stability score.
        box_nms_thresh: box IoU above which the lower-scored mask is dropped.
        max_area: masks covering this fraction of the image or more are dropped.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.5
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    max_area: float = 0.8


def point_grid(n: int) -> torch.Tensor:
    """SAM's grid: ``n x n`` points at the centres of ``n x n`` equal cells, x fastest.

    Returns:
        float32 ``[n * n, 2]`` ``(x, y)`` in (0, 1).

    Example:
        >>> point_grid(2).tolist()
        [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    """
    side = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ys, xs = torch.meshgrid(side, side, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def stability_score(logits: torch.Tensor, offset: float, threshold: float = 0.0) -> torch.Tensor:
    """IoU of the masks at ``threshold + offset`` and ``threshold - offset`` (SAM's ``calculate_stability_score``).

    Args:
        logits: float ``[n, H, W]``.
        offset: logit offset.
        threshold: the binarisation threshold (0).

    Returns:
        float32 ``[n]``; NaN for a mask empty at both thresholds.
    """
    inter = count(logits > threshold + offset)
    union = count(logits > threshold - offset)
    return inter.float() / union.float()


def generate_masks(prompter: PointPrompter, size: Sequence[int], settings: MaskGeneratorSettings) -> MaskSet:
    """Proposals over one image.

    Args:
        prompter: the segmenter, bound to the image's embedding.
        size: the image's ``(H, W)``: masks are resized to it (bilinear, from logits).
        settings: the generator's settings.

    Returns:
        The kept masks (bool ``[n, H, W]``) with their predicted IoU, highest first.
    """
    height, width = int(size[0]), int(size[1])
    grid = point_grid(settings.points_per_side)
    kept_masks: list[torch.Tensor] = []
    kept_scores: list[torch.Tensor] = []
    device = grid.device
    for start in range(0, len(grid), settings.points_per_batch):
        logits, iou = prompter(grid[start : start + settings.points_per_batch])
        logits = logits.flatten(0, 1).float()  # [P * M, h, w]
        iou = iou.flatten().float()
        device = logits.device
        if settings.pred_iou_thresh > 0:  # the releases filter only with a positive threshold
            keep = iou > settings.pred_iou_thresh
            logits, iou = logits[keep], iou[keep]
        if not len(iou):
            continue
        if tuple(logits.shape[-2:]) != (height, width):
            logits = F.interpolate(logits[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
        if settings.stability_score_thresh > 0:
            stable = stability_score(logits, settings.stability_score_offset) >= settings.stability_score_thresh
            logits, iou = logits[stable], iou[stable]
        masks = logits > 0
        score = iou
        nonempty = areas(masks) > 0
        kept_masks.append(masks[nonempty])
        kept_scores.append(score[nonempty])
    if not kept_masks:
        return MaskSet.empty((height, width), device)
    found = MaskSet(torch.cat(kept_masks), torch.cat(kept_scores))
    found = found.select(box_nms(found.masks, found.scores, settings.box_nms_thresh))
    return found.select(areas(found.masks).double() / (height * width) < settings.max_area)
