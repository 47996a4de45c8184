"""Weighted overlap blending of tile predictions, in two steps per output block.

This is not dask's ``trim``. Each tile is predicted once, by the block that owns
it (:class:`~s2c_batch.kernels.raster.tiling.Block`). :func:`accumulate_tiles` sums the
tiles' *probabilities* (never logits) times their blend windows
(:func:`~s2c_batch.kernels.raster.tiling.tile_weight`: never 0, ramps off at scene
edges) and the windows themselves over the block's region (core + skirt), in
float64. :func:`combine_partials` adds the pieces of up to four blocks that
reach a core and normalises by the summed weights.

Class maps cannot be averaged: each pixel takes the class of the tile with the
largest weight there, ties going to the lowest global tile id. Both rules depend
only on the tiles covering a pixel (float64 sums make the summation order
immaterial at uint8 precision), so the products do not depend on the block size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from s2c_batch.kernels.prediction import Prediction, TilePredictor, predict_raw
from s2c_batch.kernels.prefetch import prefetched
from s2c_batch.kernels.raster.tiling import Block, Window, tile_core, tile_weight


@dataclass(frozen=True)
class Partial:
    """Sums of one block's tiles over a window of the output grid.

    Attributes:
        window: the pixels these arrays cover.
        acc: sum of weight * probability, float64 ``[h, w]``.
        wsum: sum of weights, float64 ``[h, w]``.
        seen: bool ``[h, w]``, pixels this block read.
        valid: bool ``[h, w]``, pixels read and valid in both dates.
        best_w: float32 ``[h, w]`` largest tile weight so far, or ``None`` without classes.
        best_id: int32 ``[h, w]`` global id of that tile (-1 = none), or ``None``.
        class_t1: uint8 ``[h, w]`` class of t1 from that tile, or ``None``.
        class_t2: uint8 ``[h, w]`` class of t2 from that tile, or ``None``.
    """

    window: Window
    acc: np.ndarray
    wsum: np.ndarray
    seen: np.ndarray
    valid: np.ndarray
    best_w: np.ndarray | None = None
    best_id: np.ndarray | None = None
    class_t1: np.ndarray | None = None
    class_t2: np.ndarray | None = None

    def crop(self, window: Window) -> Partial:
        """A copy of the part of this partial inside ``window`` (which it must contain).

        A copy, not a view: a piece waiting for its destination must not keep
        the whole region's arrays alive.
        """
        s = window.slices((self.window.row, self.window.col))

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[s].copy()

        return Partial(window, cut(self.acc), cut(self.wsum), cut(self.seen), cut(self.valid),  # type: ignore[arg-type]
                       cut(self.best_w), cut(self.best_id), cut(self.class_t1), cut(self.class_t2))


@dataclass(frozen=True)
class BlockPrediction:
    """Blended outputs over a block core.

    Attributes:
        prob: change probability, float32 ``[h, w]`` (NaN where no tile had valid pixels).
        valid: bool ``[h, w]``, valid in both dates.
        class_t1: uint8 ``[h, w]`` or ``None``.
        class_t2: uint8 ``[h, w]`` or ``None``.
    """

    prob: np.ndarray
    valid: np.ndarray
    class_t1: np.ndarray | None
    class_t2: np.ndarray | None


def accumulate_tiles(
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
    prefetch: bool | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> Partial:
    """Predict a block's own tiles in batches and sum them over its region.

    Args:
        t1: raw pixels ``[C, H_read, W_read]`` of ``block.read`` (any dtype; kept
            raw so a block costs 1 byte per uint8 sample; tiles are scaled per batch).
        t2: raw pixels ``[C, H_read, W_read]``.
        valid: bool ``[H_read, W_read]``, valid in both dates (padding is False).
        block: the block (tiles and read window in scene coordinates).
        shape: scene ``(height, width)``, to switch ramps off at scene edges.
        overlap: tile overlap in pixels.
        predictor: the tile predictor held by the worker.
        batch_size: tile pairs per ``predictor.predict`` call.
        scale: raw value that maps to 1.0 (see :func:`~s2c_batch.kernels.prediction.to_unit`).
        prefetch: predict the next batch in a background thread while this one is
            blended (:func:`~s2c_batch.kernels.prefetch.prefetched`). ``None``: when the
            predictor says its work runs on another device (``device_async``, e.g. CUDA).
            The sums are the same either way.
        on_batch: called in the caller's thread after each batch is summed, with the
            tiles summed so far and the tiles to predict (those with a valid pixel).

    Returns:
        The block's sums over ``block.region``.
    """
    region = block.region
    h, w = region.height, region.width
    acc = np.zeros((h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    seen = np.zeros((h, w), bool)
    ok = np.zeros((h, w), bool)
    best_w = best_id = cls1 = cls2 = None
    if block.read is None:
        return Partial(region, acc, wsum, seen, ok)
    origin = (block.read.row, block.read.col)
    part = block.read.intersection(region)
    if part is not None:
        seen[part.slices((region.row, region.col))] = True
        ok[part.slices((region.row, region.col))] = valid[part.slices(origin)]

    # Tiles without a single valid pixel cover only nodata output: skip them.
    todo = [(t, i) for t, i in zip(block.tiles, block.tile_ids, strict=True) if valid[t.slices(origin)].any()]

    owns = bool(getattr(predictor, "owns_objects", False))

    def run(batch: list[tuple[Window, int]]) -> Prediction:
        idx = [t.slices(origin) for t, _ in batch]
        a = np.stack([t1[(slice(None), *s)] for s in idx])
        b = np.stack([t2[(slice(None), *s)] for s in idx])
        cores = np.stack([core_mask(t, shape, overlap) for t, _ in batch]) if owns else None
        return predict_raw(predictor, a, b, scale, cores)  # raw tiles: scaled on the device when it can

    if prefetch is None:
        prefetch = bool(getattr(predictor, "device_async", False))
    summed = 0
    for batch, pred in prefetched(run, list(_batches(todo, batch_size)), enabled=prefetch):
        for k, (tile, tile_id) in enumerate(batch):
            sub = tile.intersection(region)
            if sub is None:  # pragma: no cover - a tile always starts inside its owner's core
                continue
            in_tile = sub.slices((tile.row, tile.col))
            in_reg = sub.slices((region.row, region.col))
            wt = tile_weight(tile, shape, overlap)[in_tile]
            if pred.weight is not None:  # the tile's priority on the objects it owns
                wt = wt * pred.weight[k][in_tile]
            acc[in_reg] += wt * pred.prob[k][in_tile].astype(np.float64)
            wsum[in_reg] += wt
            if pred.class_t1 is not None and pred.class_t2 is not None:
                if best_w is None:
                    best_w = np.zeros((h, w), np.float32)
                    best_id = np.full((h, w), -1, np.int32)
                    cls1 = np.zeros((h, w), np.uint8)
                    cls2 = np.zeros((h, w), np.uint8)
                take = wt > best_w[in_reg]  # tiles come in id order: ties keep the lower id
                best_w[in_reg][take] = wt[take]
                best_id[in_reg][take] = tile_id  # type: ignore[index]
                cls1[in_reg][take] = pred.class_t1[k][in_tile][take]  # type: ignore[index]
                cls2[in_reg][take] = pred.class_t2[k][in_tile][take]  # type: ignore[index]
        summed += len(batch)
        if on_batch is not None:
            on_batch(summed, len(todo))
    return Partial(region, acc, wsum, seen, ok, best_w, best_id, cls1, cls2)


def core_mask(tile: Window, shape: tuple[int, int], overlap: int) -> np.ndarray:
    """The pixels of a tile in its core, bool ``[tile, tile]`` (:func:`~s2c_batch.kernels.raster.tiling.tile_core`)."""
    core = tile_core(tile, shape, overlap)
    out = np.zeros((tile.height, tile.width), bool)
    out[core.slices((tile.row, tile.col))] = True
    return out


def split_partial(partial: Partial, cores: Mapping[tuple[int, int], Window]) -> dict[tuple[int, int], Partial]:
    """Cut a block's partial into the pieces that fall in each destination core."""
    pieces = {}
    for key, core in cores.items():
        part = partial.window.intersection(core)
        if part is not None:
            pieces[key] = partial.crop(part)
    return pieces


def combine_partials(pieces: Sequence[Partial], core: Window) -> BlockPrediction:
    """Add the pieces of the blocks that reach ``core`` and normalise.

    Args:
        pieces: partials cropped to (parts of) ``core``, in :meth:`TilePlan.sources` order.
        core: the block core.

    Returns:
        The blended probability, validity and class maps over ``core``.
    """
    h, w = core.height, core.width
    acc = np.zeros((h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    valid = np.zeros((h, w), bool)
    # Class maps: the class of the tile with the largest weight (then the lowest tile id).
    classes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # best_w, best_id, t1, t2
    for p in pieces:
        s = p.window.slices((core.row, core.col))
        acc[s] += p.acc
        wsum[s] += p.wsum
        valid[s] |= p.valid
        if p.best_w is None:
            continue
        if p.best_id is None or p.class_t1 is None or p.class_t2 is None:
            raise ValueError("a partial with tile weights must carry tile ids and both class maps")
        if classes is None:
            classes = (np.zeros((h, w), np.float32), np.full((h, w), -1, np.int32),
                       np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8))
        bw, bi, c1, c2 = (a[s] for a in classes)
        take = (p.best_w > bw) | ((p.best_w == bw) & (p.best_id >= 0) & ((bi < 0) | (p.best_id < bi)))
        bw[take] = p.best_w[take]
        bi[take] = p.best_id[take]
        c1[take] = p.class_t1[take]
        c2[take] = p.class_t2[take]
    cls1, cls2 = (classes[2], classes[3]) if classes is not None else (None, None)
    covered = wsum > 0
    prob = np.full((h, w), np.nan, np.float32)
    np.divide(acc, wsum, out=acc, where=covered)
    prob[covered] = acc[covered]
    return BlockPrediction(prob=prob, valid=valid, class_t1=cls1, class_t2=cls2)


def _batches(items: Sequence[tuple[Window, int]], size: int) -> Iterator[list[tuple[Window, int]]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])
