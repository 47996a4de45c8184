"""The block and tile plan of a run, and its estimates, without reading pixels.

``s2c-batch plan`` prints :func:`plan_summary` as JSON; ``s2c-batch run`` uses the
same :class:`~s2c_batch.kernels.raster.tiling.TilePlan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config, comparator_options
from s2c_batch.pipeline.inputs.scene import ScenePair


def make_plan(pair: ScenePair, cfg: Config) -> TilePlan:
    """The tile plan of the pair's output grid under the ``tiling`` config."""
    t = cfg.tiling
    return TilePlan(pair.grid.height, pair.grid.width, t.tile_size, t.overlap, t.block_size)


def untiled(cfg: Config) -> bool:
    """Whether the run takes the untiled path: a classical comparator and no identifier.

    Pointwise and neighbourhood comparators need no tiles; anything with a tile model
    (CACH, DCVA, the identifier) is tiled.
    """
    return not cfg.model.uses_torch


def halo(cfg: Config) -> int:
    """Pixels the untiled path reads around each block (the comparator's neighbourhood)."""
    return cfg.model.spec.halo(comparator_options(cfg))


def products_for(cfg: Config) -> tuple[str, ...]:
    """Names of the product arrays a run with this config writes."""
    base = ("change_prob", "change_mask")
    return base + (("class_t1", "class_t2") if cfg.model.identifier != "none" else ())


def plan_summary(pair: ScenePair, cfg: Config) -> dict[str, Any]:
    """Plan and estimates as plain data.

    ``path`` says how the run computes: ``untiled`` (a classical comparator without
    identifier: one task per block, reading ``halo`` pixels around it, no tiles) or
    ``tiled`` (tile models: tiles, overlap and blending); ``fit`` whether whole-scene
    parameters are fitted first; ``threshold`` the mask threshold or ``otsu``.

    The peak memory per worker is estimated from one block. Tiled: both dates of its
    read window as raw pixels, its float64 partial sums over core and skirt, one
    batch of float32 tiles, and combining and encoding one core; it excludes the
    model's own weights and activations, and the skirts waiting for the next
    block row (about ``2 * block * tile * 18`` bytes per block of a row,
    spread over the cluster). Untiled: one strip of ``chunk_size`` rows of both dates
    (raw and float32, with the halo) and the block's probability, validity and products.
    """
    plan = make_plan(pair, cfg)
    summary = _tiled_summary(pair, cfg, plan)
    summary["path"] = {"kind": "untiled" if untiled(cfg) else "tiled", "halo": halo(cfg) if untiled(cfg) else None,
                       "fit": cfg.model.fitted, "threshold": cfg.model.threshold}
    if untiled(cfg):
        c = len(cfg.input.bands)
        itemsize = np.dtype(pair.t1.dtype).itemsize
        r = halo(cfg)
        blocks = [blk.core for blk in plan.blocks()]
        b = min(plan.block, plan.height), min(plan.block, plan.width)
        strip = (min(cfg.tiling.chunk_size, b[0]) + 2 * r) * (b[1] + 2 * r)
        summary["tiles"] = summary["tiles_computed"] = 0
        summary["bytes_read"] = int(sum((w.height + 2 * r) * (w.width + 2 * r) for w in blocks) * 2 * c * itemsize)
        summary["peak_memory_per_worker_bytes"] = int(
            2 * strip * c * (itemsize + 4) + 3 * strip  # both dates of one strip, raw and in [0, 1], validity
            + b[0] * b[1] * (4 + 1 + len(products_for(cfg)))  # the block's probability, validity and products
        )
    return summary


def _tiled_summary(pair: ScenePair, cfg: Config, plan: TilePlan) -> dict[str, Any]:
    c = len(cfg.input.bands)
    itemsize = np.dtype(pair.t1.dtype).itemsize
    rh, rw = plan.max_read_shape()
    b = min(plan.block, plan.height), min(plan.block, plan.width)
    region = min(plan.block + plan.tile, plan.height) * min(plan.block + plan.tile, plan.width)
    classes = cfg.model.identifier != "none"
    per_px = 8 + 8 + 1 + 1 + (4 + 4 + 1 + 1 if classes else 0)  # partial sums of one block
    task_bytes = (
        2 * rh * rw * c * itemsize + 3 * rh * rw  # raw pixels of both dates + validity masks
        + region * per_px  # the block's partial sums over core + skirt
        + 2 * cfg.model.batch_size * c * plan.tile * plan.tile * 4  # one batch of float32 tiles
        + b[0] * b[1] * (per_px + 4 + len(products_for(cfg)))  # combining and encoding one core
    )
    read_bytes = sum(blk.read.height * blk.read.width for blk in plan.blocks() if blk.read)
    read_bytes *= 2 * c * itemsize
    return {
        "grid": {
            "height": pair.grid.height,
            "width": pair.grid.width,
            "crs": pair.grid.crs.to_string(),
            "transform": list(pair.grid.transform),
        },
        "tiling": {
            "tile_size": plan.tile,
            "overlap": plan.overlap,
            "stride": plan.tile - plan.overlap,
            "block_size": plan.block,
            "tiles_per_axis": [len(plan.row_starts), len(plan.col_starts)],
        },
        "blocks": plan.n_blocks,
        "block_grid": list(plan.block_grid),
        "tiles": plan.n_tiles,
        "tiles_computed": plan.tiles_computed(),
        "bytes_read": int(read_bytes),
        "peak_memory_per_worker_bytes": int(task_bytes),
        "products": list(products_for(cfg)),
        "aligned": pair.t2.warp is None,
    }
