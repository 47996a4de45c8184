"""Host/device overlap benchmark: a block's blend hidden behind a simulated GPU.

A block task on a GPU alternates between waiting for the model and blending its
output on the host. With ``device_async`` predictors the next batch is predicted
in the prefetch thread while the current one is blended
(:mod:`s2c_batch.kernels.prefetch`). This benchmark measures that mechanism
without a GPU: the predictor sleeps ``--model-ms`` per tile pair (a GPU wait
releases the GIL the same way) and returns random probabilities and class maps.

Usage::

    python bench/overlap.py                 # block 4096, tile 512, overlap 128, batch 8, 80 ms per pair

Prints ``host_ms_per_tile`` (the blend alone: the model returns at once), the wall
time of the block in turn and with prefetch, the ideal (model time alone), and
``hidden`` = the share of the host time the overlap removed. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.raster.blend import accumulate_tiles
from s2c_batch.kernels.raster.tiling import TilePlan


class SleepingPredictor:
    """Waits ``ms_per_pair`` per tile pair, like a host waiting for a GPU, then returns random maps."""

    class_names = ("background", "building")
    target_classes = (1,)
    device_async = True

    def __init__(self, ms_per_pair: float) -> None:
        self.ms_per_pair = ms_per_pair
        self.rng = np.random.default_rng(0)

    def predict(self, a: np.ndarray, b: np.ndarray) -> Prediction:
        n, _, h, w = a.shape
        time.sleep(self.ms_per_pair * n / 1000)
        cls = self.rng.integers(0, 2, (n, h, w), dtype=np.uint8)
        return Prediction(prob=self.rng.random((n, h, w), dtype=np.float32), class_t1=cls, class_t2=cls)


def run(plan: TilePlan, predictor: SleepingPredictor, batch: int, prefetch: bool) -> float:
    """Wall seconds of one block's ``accumulate_tiles``."""
    blk = plan.block_at(0, 0)
    r = blk.read
    assert r is not None
    rng = np.random.default_rng(1)
    t1 = rng.integers(0, 256, (3, r.height, r.width), dtype=np.uint8)
    t2 = rng.integers(0, 256, (3, r.height, r.width), dtype=np.uint8)
    valid = np.ones((r.height, r.width), bool)
    start = time.perf_counter()
    accumulate_tiles(t1, t2, valid, block=blk, shape=plan.shape, overlap=plan.overlap, predictor=predictor,
                     batch_size=batch, scale=255.0, prefetch=prefetch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model-ms", type=float, default=80.0, help="simulated GPU time per tile pair")
    args = parser.parse_args()

    plan = TilePlan(2 * args.block, 2 * args.block, args.tile, args.overlap, args.block)
    tiles = len(plan.block_at(0, 0).tiles)
    host = min(run(plan, SleepingPredictor(0.0), args.batch, False) for _ in range(2))
    model = tiles * args.model_ms / 1000
    in_turn = run(plan, SleepingPredictor(args.model_ms), args.batch, False)
    overlapped = run(plan, SleepingPredictor(args.model_ms), args.batch, True)
    result = {
        "bench": "overlap",
        "tiles": tiles,
        "batch": args.batch,
        "model_ms_per_pair": args.model_ms,
        "host_ms_per_tile": round(1000 * host / tiles, 2),
        "model_s": round(model, 2),
        "in_turn_s": round(in_turn, 2),
        "prefetch_s": round(overlapped, 2),
        "speedup": round(in_turn / overlapped, 3),
        "hidden": round((in_turn - overlapped) / max(in_turn - model, 1e-9), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
