"""The predictor on an accelerator: ``TORCH_DEVICE`` (default ``cuda``); skipped when it is absent.

Run on a GPU machine with ``pytest -m gpu``. ``TORCH_DEVICE=cpu pytest -m gpu`` runs
the same checks on the CPU (where they only check the logic).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import numpy as np
import pytest
import torch

from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.kernels.predictors.tile import ChangePredictor
from s2c_batch.kernels.raster.blend import accumulate_tiles
from s2c_batch.kernels.raster.tiling import TilePlan

from testutils import TINY_MODEL, output_dtypes

DEVICE = os.environ.get("TORCH_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="no CUDA device"),
]

#: Strict float32 (no autocast, no TF32) everywhere: the baseline the other precisions are compared with.
TINY = dataclasses.replace(TINY_MODEL, precision="fp32", comparator_precision="fp32", tf32=False)


def _tiles(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8),
            rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def _on(device: str, **changes: object) -> ChangePredictor:
    pred = build_predictor(dataclasses.replace(TINY, device=device, **changes))  # type: ignore[arg-type]
    assert isinstance(pred, ChangePredictor)
    return pred


#: CUDA kernels sum in another order than the CPU's.
ATOL = 2e-3


def test_device__fp32_equals_the_cpu() -> None:
    a, b = _tiles(3)
    cpu = _on("cpu").predict_raw(a, b, 255.0)
    dev = _on(DEVICE).predict_raw(a, b, 255.0)
    np.testing.assert_allclose(dev.prob, cpu.prob, atol=ATOL)
    for d, c in ((dev.class_t1, cpu.class_t1), (dev.class_t2, cpu.class_t2)):
        assert d is not None and c is not None and (d == c).mean() > 0.99


def test_device__bf16_autocast_stays_close_to_fp32() -> None:
    a, b = _tiles(4, seed=1)
    fp32 = _on(DEVICE).predict_raw(a, b, 255.0)
    bf16 = _on(DEVICE, precision="bf16", comparator_precision="bf16").predict_raw(a, b, 255.0)
    assert bf16.prob.dtype == np.float32 and np.isfinite(bf16.prob).all()
    assert np.abs(bf16.prob - fp32.prob).max() < 0.05


def test_device__paper_precision_comparator_fp32_identifier_bf16() -> None:
    """The default split: DINOv2 and CACH in float32 (TF32 allowed), SAM 3 under bf16 autocast."""
    pred = _on(DEVICE, precision="bf16", comparator_precision="fp32", tf32=True)
    assert pred.identifier is not None and pred.backbone is not None and pred.cach is not None
    sam3 = pred.identifier.sam3
    parts = {"backbone": pred.backbone, "cach": pred.cach, "detr_encoder": sam3.detr_encoder,
             "mask_decoder": sam3.mask_decoder}
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    a, b = _tiles(2, seed=5)
    with output_dtypes(parts) as seen:
        got = pred.predict_raw(a, b, 255.0)
    on_cuda = pred.device.type == "cuda"
    assert seen["backbone"] == seen["cach"] == {torch.float32}
    assert seen["detr_encoder"] == seen["mask_decoder"] == {torch.bfloat16 if on_cuda else torch.float32}
    assert seen["tf32"] == {("high", True) if on_cuda else before}
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before  # restored
    # The change probability is the comparator's alone: the identifier's precision does not touch it.
    fp32_identifier = _on(DEVICE, precision="fp32", comparator_precision="fp32", tf32=True).predict_raw(a, b, 255.0)
    np.testing.assert_array_equal(got.prob, fp32_identifier.prob)


def test_device__raw_uint8_scaled_on_the_device_equals_float_input() -> None:
    pred = _on(DEVICE)
    a, b = _tiles(2, seed=2)
    raw = pred.predict_raw(a, b, 255.0)
    unit = pred.predict(a.astype(np.float32) / 255, b.astype(np.float32) / 255)
    np.testing.assert_allclose(raw.prob, unit.prob, atol=1e-5)


def test_device__block_blend_with_prefetch_equals_in_turn() -> None:
    """On an asynchronous device the block task predicts the next batch in the prefetch thread."""
    pred = _on(DEVICE)
    assert pred.device_async == (pred.device.type == "cuda")
    plan = TilePlan(200, 200, 64, 16, 200)
    blk = plan.block_at(0, 0)
    rng = np.random.default_rng(3)
    t1, t2 = rng.integers(0, 256, (2, 3, 200, 200), dtype=np.uint8)
    valid = np.ones((200, 200), bool)
    threads: list[str] = []
    predict_raw = pred.predict_raw

    def recording(x: np.ndarray, y: np.ndarray, scale: float) -> Any:
        threads.append(threading.current_thread().name)
        return predict_raw(x, y, scale)

    pred.predict_raw = recording  # type: ignore[method-assign]
    runs = [accumulate_tiles(t1, t2, valid, block=blk, shape=plan.shape, overlap=plan.overlap, predictor=pred,
                             batch_size=2, scale=255.0, prefetch=p) for p in (False, True)]
    assert any(t.startswith("s2c-prefetch") for t in threads)
    np.testing.assert_allclose(runs[1].acc, runs[0].acc, atol=1e-6)
    np.testing.assert_array_equal(runs[1].wsum, runs[0].wsum)


def test_device__compiled_vision_and_detector_give_the_eager_result() -> None:
    a, b = _tiles(2, seed=4)
    eager = _on(DEVICE).predict_raw(a, b, 255.0)
    compiled = _on(DEVICE, compile=("backbone", "vision", "detector"))
    got = compiled.predict_raw(a, b, 255.0)
    assert compiled.compiled == ("backbone", "vision", "detector")
    np.testing.assert_allclose(got.prob, eager.prob, atol=ATOL)
