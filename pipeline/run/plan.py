"""The block and tile plan of a run, and its estimates, without reading pixels.

``s2c-batch plan`` prints :func:`plan_summary` as JSON; ``s2c-batch run`` uses the
same :class:`~s2c_batch.kernels.raster.tiling.TilePlan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.scene import ScenePair


def make_plan(pair: ScenePair, cfg: Config) -> TilePlan:
    """The tile plan of the pair's output grid under the ``tiling`` config."""
    t = cfg.tiling
    return TilePlan(pair.grid.height, pair.grid.width, t.tile_size, t.overlap, t.block_size)


def products_for(cfg: Config) -> tuple[str, ...]:
    """Names of the product arrays a run with this config writes."""
    base = ("change_prob", "change_mask")
    return base + (("class_t1", "class_t2") if cfg.model.identifier != "none" else ())


def plan_summary(pair: ScenePair, cfg: Config) -> dict[str, Any]:
    """Plan and estimates as plain data.

    The peak memory per worker is estimated from one block: both dates of its
    read window as raw pixels, its float64 partial sums over core and skirt, one
    batch of float32 tiles, and combining and encoding one core. It excludes the
    model's own weights and activations, and the skirts waiting for the next
    block row (about ``2 * block * tile * 18`` bytes per block of a row,
    spread over the cluster).
    """
    plan = make_plan(pair, cfg)
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
