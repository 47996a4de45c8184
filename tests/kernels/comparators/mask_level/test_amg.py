"""The point-grid automatic mask generator against a stand-in segmenter whose masks are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2c_batch.kernels.comparators.mask_level.amg import (
    MaskGeneratorSettings,
    generate_masks,
    point_grid,
    stability_score,
)

H, W = 40, 48
#: Objects of the stand-in image as (row0, col0, row1, col1).
OBJECTS = {"house": (4, 4, 14, 16), "pool": (20, 30, 30, 42), "shed": (6, 22, 10, 26)}


def box_mask(r0: int, c0: int, r1: int, c1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[r0:r1, c0:c1] = True
    return m


class StandIn:
    """A promptable segmenter with fixed answers: for a point on an object, three masks:

    0. the object, sharp logits (+8 / -8), predicted IoU 0.9 (stable);
    1. the object, soft logits (+0.6 / -0.6), predicted IoU 0.92 (unstable: below the offset);
    2. the whole image but the object, sharp, IoU 0.95 (covers more than 0.8 of the image).

    For a point on no object: the background (sharp, IoU 0.97, too large), a stripe (sharp, IoU
    0.3: below pred_iou_thresh) and an empty mask (IoU 0.99). Logits come at the image size
    unless ``low`` (then at a quarter, as SAM's low-resolution masks, resized by the generator).
    """

    def __init__(self, low: bool = False) -> None:
        self.calls: list[torch.Tensor] = []
        self.low = low

    def __call__(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(points.clone())
        logits, ious = [], []
        for x, y in points.tolist():
            r, c = int(y * H), int(x * W)
            hit = [name for name, (r0, c0, r1, c1) in OBJECTS.items() if r0 <= r < r1 and c0 <= c < c1]
            if hit:
                obj = box_mask(*OBJECTS[hit[0]])
                masks = [np.where(obj, 8.0, -8.0), np.where(obj, 0.6, -0.6), np.where(obj, -8.0, 8.0)]
                ious.append([0.9, 0.92, 0.95])
            else:
                stripe = np.zeros((H, W), bool)
                stripe[:, :4] = True
                masks = [np.full((H, W), 8.0), np.where(stripe, 8.0, -8.0), np.full((H, W), -8.0)]
                ious.append([0.97, 0.3, 0.99])
            logits.append(np.stack(masks))
        full = torch.tensor(np.stack(logits), dtype=torch.float32)  # [P, 3, H, W]
        if self.low:
            full = torch.nn.functional.avg_pool2d(full, 4)
        return full, torch.tensor(ious)


def test_point_grid__cell_centres_x_fastest() -> None:
    g = point_grid(4)
    assert g.shape == (16, 2)
    assert g[:4, 0].tolist() == [0.125, 0.375, 0.625, 0.875] and g[:4, 1].tolist() == [0.125] * 4
    assert g[4].tolist() == [0.125, 0.375]


def test_stability_score__iou_of_the_masks_at_plus_and_minus_offset() -> None:
    logits = torch.tensor([[[2.0, 0.5, -0.5, -2.0]], [[0.2, 0.2, -3.0, -3.0]]])
    assert stability_score(logits, 1.0).tolist() == [pytest.approx(1 / 3), 0.0]


def test_generate_masks__keeps_each_object_once_and_drops_by_threshold_area_and_nms() -> None:
    seg = StandIn()
    settings = MaskGeneratorSettings(points_per_side=16, points_per_batch=50)
    out = generate_masks(seg, (H, W), settings)
    # 256 grid points in ceil(256 / 50) calls, in grid order
    assert len(seg.calls) == 6 and torch.equal(torch.cat(seg.calls), point_grid(16))
    found = sorted(tuple(np.argwhere(m.numpy())[[0, -1]].ravel()) for m in out.masks)
    want = sorted((r0, c0, r1 - 1, c1 - 1) for r0, c0, r1, c1 in OBJECTS.values())
    assert found == want  # one mask per object: NMS merged the many points on it
    assert torch.allclose(out.scores, torch.full((3,), 0.9))


def test_generate_masks__thresholds_and_area_cap_can_be_relaxed() -> None:
    loose = MaskGeneratorSettings(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_area=1.0,
                                  box_nms_thresh=1.0)
    out = generate_masks(StandIn(), (H, W), loose)
    areas = {int(m.sum()) for m in out.masks}
    # every non-empty answer survives: the objects (120 px; sharp and soft alike), their
    # complements (1800), the stripe (160); the whole image is still too large (area < max_area)
    assert areas == {120, 160, H * W - 120}
    assert all(int(m.sum()) for m in out.masks)  # empty masks never count
    strict_area = MaskGeneratorSettings(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                                        max_area=0.8)
    assert all(float(m.float().mean()) < 0.8 for m in generate_masks(StandIn(), (H, W), strict_area).masks)
    soft = MaskGeneratorSettings(points_per_side=8, stability_score_offset=0.5)  # 0.6 > 0.5: the soft masks are stable
    scores = generate_masks(StandIn(), (H, W), soft).scores
    assert scores.max() == pytest.approx(0.92)


def test_generate_masks__resizes_low_resolution_logits_to_the_image() -> None:
    out = generate_masks(StandIn(low=True), (H, W), MaskGeneratorSettings(points_per_side=16,
                                                                          stability_score_thresh=0.8))
    assert out.masks.shape[1:] == (H, W) and len(out) >= 1
    objects = [torch.from_numpy(box_mask(*box)) for box in OBJECTS.values()]
    best = max(float((m & o).sum() / (m | o).sum()) for m in out.masks for o in objects)
    assert best > 0.8


def test_generate_masks__nothing_found() -> None:
    class Nothing:
        def __call__(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.full((len(points), 3, 10, 12), -5.0), torch.full((len(points), 3), 0.99)

    out = generate_masks(Nothing(), (H, W), MaskGeneratorSettings(points_per_side=4))
    assert len(out) == 0 and out.masks.shape == (0, H, W)
