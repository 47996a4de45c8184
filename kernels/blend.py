"""Weighted overlap blending of tile predictions into one output block.

This is not dask's ``trim``: every tile that touches the block core is
predicted, its *probabilities* (never logits) are multiplied by the tile's blend
window (:func:`~s2c_batch.kernels.tiling.tile_weight`, never 0, ramps off at
scene edges), summed, and normalised by the summed weights. Class maps cannot be
averaged, so each pixel takes the class of the tile with the largest weight
there (the first in global tile order on ties). Both rules depend only on the
tiles covering a pixel, so a block's core equals the same pixels of a
whole-scene run whatever the block size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.kernels.tiling import Block, Window, tile_weight


@dataclass(frozen=True)
class BlockPrediction:
    """Blended outputs over a block core.

    Attributes:
        prob: change probability, float32 ``[h, w]`` (NaN where no tile had valid pixels).
        class_t1: uint8 ``[h, w]`` or ``None``.
        class_t2: uint8 ``[h, w]`` or ``None``.
    """

    prob: np.ndarray
    class_t1: np.ndarray | None
    class_t2: np.ndarray | None


def predict_block(
    t1: np.ndarray,
    t2: np.ndarray,
    valid: np.ndarray,
    *,
    block: Block,
    shape: tuple[int, int],
    overlap: int,
    predictor: TilePredictor,
    batch_size: int,
    scale: float = 1.0,
) -> BlockPrediction:
    """Cut a block's tiles, predict them in batches and blend into the core.

    Args:
        t1: raw pixels ``[C, H_read, W_read]`` of ``block.read`` (any dtype; kept
            raw so a block costs 1 byte per uint8 sample; tiles are scaled per batch).
        t2: raw pixels ``[C, H_read, W_read]``.
        valid: bool ``[H_read, W_read]``, valid in both dates (padding is False).
        block: the block (core, read window, tiles in scene coordinates).
        shape: scene ``(height, width)``, to switch ramps off at scene edges.
        overlap: tile overlap in pixels.
        predictor: the tile predictor held by the worker.
        batch_size: tile pairs per ``predictor.predict`` call.
        scale: raw value that maps to 1.0 (see :func:`to_unit`).

    Returns:
        The blended probability and class maps over ``block.core``.
    """
    core = block.core
    acc = np.zeros((core.height, core.width), np.float32)
    wsum = np.zeros((core.height, core.width), np.float32)
    best_w = np.zeros((core.height, core.width), np.float32)
    cls1: np.ndarray | None = None
    cls2: np.ndarray | None = None
    origin = (block.read.row, block.read.col)

    # Tiles without a single valid pixel cover only nodata output: skip them.
    tiles = [t for t in block.tiles if valid[t.slices(origin)].any()]
    for batch in _batches(tiles, batch_size):
        idx = [t.slices(origin) for t in batch]
        a = to_unit(np.stack([t1[(slice(None), *s)] for s in idx]), scale)
        b = to_unit(np.stack([t2[(slice(None), *s)] for s in idx]), scale)
        pred = predictor.predict(a, b)
        for k, tile in enumerate(batch):
            part = tile.intersection(core)
            if part is None:  # pragma: no cover - tiles are chosen to touch the core
                continue
            in_tile = part.slices((tile.row, tile.col))
            in_core = part.slices((core.row, core.col))
            w = tile_weight(tile, shape, overlap)[in_tile]
            acc[in_core] += w * pred.prob[k][in_tile]
            wsum[in_core] += w
            if pred.class_t1 is not None and pred.class_t2 is not None:
                if cls1 is None:
                    cls1 = np.zeros((core.height, core.width), np.uint8)
                    cls2 = np.zeros((core.height, core.width), np.uint8)
                take = w > best_w[in_core]
                cls1[in_core][take] = pred.class_t1[k][in_tile][take]
                cls2[in_core][take] = pred.class_t2[k][in_tile][take]  # type: ignore[index]
                best_w[in_core] = np.maximum(best_w[in_core], w)
    covered = wsum > 0
    np.divide(acc, wsum, out=acc, where=covered)  # in place: no block-sized temporaries
    acc[~covered] = np.nan
    return BlockPrediction(prob=acc, class_t1=cls1, class_t2=cls2)


def to_unit(raw: np.ndarray, scale: float) -> np.ndarray:
    """Raw pixels to float32 in [0, 1]: ``clip(raw / scale, 0, 1)``, NaN to 0.

    Example:
        >>> to_unit(np.array([0, 51, 255, 300], np.uint16), 255.0).tolist()
        [0.0, 0.20000000298023224, 1.0, 1.0]
    """
    out = raw.astype(np.float32)
    out /= np.float32(scale)
    np.clip(out, 0.0, 1.0, out=out)
    if raw.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


def _batches(items: Sequence[Window], size: int) -> Iterator[list[Window]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
