"""``output.min_area_m2``: the minimum mapping unit, two cheap passes over the written change mask.

After every block is written (and, with Otsu, after the mask pass), and before the COGs
and the derived products:

1. one task per block (:func:`measure_block`) labels the block's 4-connected changed
   regions and returns the pixels and area of each piece and the labels on its four
   edges (no pixel block travels);
2. the client glues the pieces of every region across block seams, as the polygons do
   (:func:`~s2c_batch.kernels.raster.mmu.block_groups`), so a region that crosses block
   borders is measured whole, and picks the regions below the unit;
3. one task per block that holds a piece of such a region (:func:`clear_block`) labels it
   again (labelling is deterministic), sets those pieces to 0 and rewrites the block's
   ``change_mask`` shard.

The polygons and the from/to counts start after the pass, so they never see a dropped
region. The pass is idempotent: on a mask it already filtered (an interrupted run
resumed) it drops nothing more, since every region it keeps is at least the unit and
removing other regions never changes a kept one. Areas are those of
:mod:`~s2c_batch.pipeline.products.area`: pixels times the pixel's area on a projected
grid (the polygons' ``area_m2``), the pixels' row areas on a geographic one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2c_batch.kernels.raster.mmu import Edges, block_groups, clear_labels, piece_areas, small_regions
from s2c_batch.kernels.raster.regions import label_regions
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.products.area import is_geographic, planar_pixel_area_m2, row_areas_m2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockPieces:
    """What a measuring task returns: the block's pieces, small.

    Attributes:
        index: (block row, block col).
        pixels: int64 ``[n]`` pixels of each label ``1..n``.
        area: float64 ``[n]`` their area in m2.
        edges: the labels on the block's four edges.
    """

    index: tuple[int, int]
    pixels: np.ndarray
    area: np.ndarray
    edges: Edges


@dataclass(frozen=True)
class MinAreaResult:
    """What the unit dropped, for ``run.json`` (``min_area``) and the STAC item.

    Attributes:
        min_area_m2: the unit.
        regions: changed regions before the pass.
        regions_dropped: regions smaller than the unit, removed.
        pixels_dropped: their pixels.
        area_dropped_m2: their area.
    """

    min_area_m2: float
    regions: int
    regions_dropped: int
    pixels_dropped: int
    area_dropped_m2: float

    def to_json(self) -> dict[str, Any]:
        """As recorded in ``run.json``."""
        return {"min_area_m2": self.min_area_m2, "regions": self.regions, "regions_dropped": self.regions_dropped,
                "regions_kept": self.regions - self.regions_dropped, "pixels_dropped": self.pixels_dropped,
                "area_dropped_m2": round(self.area_dropped_m2, 4)}


def measure_block(store_path: store.StorePath, index: tuple[int, int], window: Window,
                  row_areas: np.ndarray) -> BlockPieces:
    """Label one block's changed regions and measure each piece (a task)."""
    labels, n = label_regions(store.read_window(store_path, "change_mask", window))
    pixels, area = piece_areas(labels, n, row_areas)
    edges = (labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())
    return BlockPieces(index, pixels, area, edges)


def clear_block(store_path: store.StorePath, window: Window, drop: np.ndarray) -> int:
    """Set the block's pieces ``drop`` marks to 0 and rewrite its ``change_mask`` (a task).

    Returns:
        Pixels cleared.
    """
    mask = store.read_window(store_path, "change_mask", window)
    labels, n = label_regions(mask)
    if n != len(drop):  # the mask changed under the pass: nothing else writes it meanwhile
        raise RuntimeError(f"block at {window}: {n} regions now, {len(drop)} when measured")
    out = clear_labels(mask, labels, drop)
    store.write_block(store_path, window, {"change_mask": out})
    return int((out != mask).sum())


def plan_drops(parts: Sequence[BlockPieces], min_area_m2: float,
               pixel_area: float | None) -> tuple[dict[tuple[int, int], np.ndarray], MinAreaResult]:
    """Which pieces of which blocks belong to regions below the unit.

    Args:
        parts: every block's pieces (any order).
        min_area_m2: the unit.
        pixel_area: the pixel's area of a projected grid (a region's area is then its
            pixels times it, exactly as the polygons'); ``None`` = sum the pieces' areas.

    Returns:
        Block index -> bool ``[n]`` per label (only blocks with a piece to drop), and the counts.
    """
    by_index = {p.index: p for p in parts}
    offsets, groups = block_groups({i: len(p.pixels) for i, p in by_index.items()},
                                   {i: p.edges for i, p in by_index.items()})
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    pixels = np.zeros(n_groups, np.int64)
    area = np.zeros(n_groups, np.float64)
    for index in sorted(by_index):  # a fixed order: the same sums on every run
        p = by_index[index]
        ids = groups[offsets[index] : offsets[index] + len(p.pixels)]
        np.add.at(pixels, ids, p.pixels)
        np.add.at(area, ids, p.area)
    if pixel_area is not None:
        area = (pixels * pixel_area).astype(np.float64)
    small = small_regions(area, min_area_m2)
    drops = {}
    for index, p in by_index.items():
        piece_drop = small[groups[offsets[index] : offsets[index] + len(p.pixels)]]
        if piece_drop.any():
            drops[index] = piece_drop
    result = MinAreaResult(min_area_m2=float(min_area_m2), regions=n_groups, regions_dropped=int(small.sum()),
                           pixels_dropped=int(pixels[small].sum()), area_dropped_m2=float(area[small].sum()))
    return drops, result


def apply_min_area(client: Any, store_path: store.StorePath, grid: Grid, *, block: int, min_area_m2: float,
                   retries: int, token: str) -> MinAreaResult:
    """Drop the changed regions below ``min_area_m2`` from the store's ``change_mask``.

    Args:
        client: the run's ``distributed.Client``.
        store_path: the run's ``change.zarr`` (every block written).
        grid: the output grid.
        block: block side (``tiling.block_size``: one task per shard).
        min_area_m2: the unit (``output.min_area_m2``).
        retries: task retries.
        token: keeps the task keys of different runs apart.

    Returns:
        What was dropped.
    """
    geodesic = is_geographic(grid)
    windows = {(bi, bj): Window(r, c, min(block, grid.height - r), min(block, grid.width - c))
               for bi, r in enumerate(range(0, grid.height, block))
               for bj, c in enumerate(range(0, grid.width, block))}
    planar = None if geodesic else planar_pixel_area_m2(grid)
    measures = [
        client.submit(measure_block, store_path, index, win,
                      row_areas_m2(grid, np.arange(win.row, win.row_stop)) if geodesic
                      else np.full(win.height, planar, np.float64),
                      key=f"s2c-mmu-measure-{token}-{index[0]}-{index[1]}", retries=retries)
        for index, win in windows.items()
    ]
    drops, result = plan_drops(client.gather(measures), min_area_m2, planar)
    clears = [client.submit(clear_block, store_path, windows[index], drop,
                            key=f"s2c-mmu-clear-{token}-{index[0]}-{index[1]}", retries=retries)
              for index, drop in sorted(drops.items())]
    cleared = sum(client.gather(clears))
    if cleared != result.pixels_dropped:  # pragma: no cover - the two passes label alike
        raise RuntimeError(f"the minimum mapping unit cleared {cleared} pixels, {result.pixels_dropped} planned")
    log.info("minimum mapping unit %.3f m2: %d of %d changed regions dropped (%d pixels)", min_area_m2,
             result.regions_dropped, result.regions, result.pixels_dropped)
    return result
