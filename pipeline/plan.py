"""The block and tile plan of a run, and its estimates, without reading pixels.

``s2c-batch plan`` prints :func:`plan_summary` as JSON; ``s2c-batch run`` uses the
same :class:`~s2c_batch.kernels.tiling.TilePlan`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2c_batch.kernels.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.scene import ScenePair


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

    The peak memory per worker is estimated from one block task: both dates of
    its read window as raw and float32 pixels, the float32 accumulators of its
    core, one batch of float32 tiles of both dates, and the encoded products.
    It excludes the model's own weights and activations.
    """
    plan = make_plan(pair, cfg)
    c = len(cfg.input.bands)
    itemsize = np.dtype(pair.t1.dtype).itemsize
    rh, rw = plan.max_read_shape()
    b = min(plan.block, plan.height), min(plan.block, plan.width)
    read_px = rh * rw
    task_bytes = (
        2 * read_px * c * (itemsize + 4)  # raw + scaled float32, both dates
        + read_px  # validity mask
        + 4 * b[0] * b[1] * 4  # accumulators + probability
        + 2 * cfg.model.batch_size * c * plan.tile * plan.tile * 4  # one batch of tiles
        + len(products_for(cfg)) * b[0] * b[1]
    )
    nbi, nbj = plan.block_grid
    read_bytes = 0
    for bi in range(nbi):
        h = plan.block_at(bi, 0).read.height
        for bj in range(nbj):
            read_bytes += h * plan.block_at(0, bj).read.width
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
