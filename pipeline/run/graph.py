"""Build the Dask graph of a run: O(blocks) tasks, nothing computed.

Two paths. A comparator that needs no tiles (pointwise or a small neighbourhood,
see :mod:`~s2c_batch.pipeline.run.untiled`) without an identifier gets one task per
block, ``s2c-block-<token>-<r>-<c>``: read with a halo, compare, encode, write.

Tile models (CACH, DCVA, and anything with an identifier) get, per block, up to four
kinds of task:

- ``s2c-read-<token>-<r>-<c>``: read both dates of the block's window (no GPU
  resource, so a two-thread GPU worker reads ahead while its GPU predicts).
- ``s2c-tiles-<token>-<r>-<c>``: predict the tiles the block owns (each tile of
  the scene exactly once), return its partial sums cut per destination core.
  Annotated ``resources={"GPU": 1}`` on GPU clusters.
- ``s2c-piece-<token>-<r>-<c>-<dr>-<dc>``: select one destination's piece, so
  only that piece travels to the writer.
- ``s2c-write-<token>-<r>-<c>``: add the pieces of the (at most four) blocks
  that reach the core, normalise, encode and write the shard.

Tasks carry small specs (paths, windows, config), never pixels or the model.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

import dask
from dask.delayed import Delayed

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.registry import RunComparator
from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.store import StorePath
from s2c_batch.pipeline.products.preview import panel_shape, sampled_from_files
from s2c_batch.pipeline.run.untiled import UntiledJob, compare_block
from s2c_batch.pipeline.run.worker import TileJob, WriteJob, predict_tiles, read_block, write_block


def write_order(plan: TilePlan, skip: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """The blocks :func:`build_graph` returns write tasks for, in its order (row-major)."""
    done = set(skip)
    nbi, nbj = plan.block_grid
    return [(i, j) for i in range(nbi) for j in range(nbj) if (i, j) not in done]


def build_graph(
    pair: ScenePair,
    plan: TilePlan,
    cfg: Config,
    store_path: StorePath,
    *,
    skip: Iterable[tuple[int, int]] = (),
    gpu: bool = False,
    token: str = "run",
    comparator: RunComparator | None = None,
) -> list[Delayed]:
    """The write task of every block not in ``skip`` (already written), row-major.

    Args:
        pair: the scenes.
        plan: the tile plan.
        cfg: the run config.
        store_path: the Zarr store the write tasks fill.
        skip: blocks already written (resume): no write task, and tile tasks
            only where a remaining block needs them.
        gpu: annotate tile tasks with ``resources={"GPU": 1}``.
        token: keeps the keys of different runs apart.
        comparator: the run's fitted comparator, handed to the predictor (``None`` for CACH).
    """
    todo = write_order(plan, skip)
    needed = sorted({s for d in todo for s in plan.sources(*d)})
    blocks = {idx: plan.block_at(*idx) for idx in set(needed) | set(todo)}
    cores = {}
    for idx in needed:
        for d in plan.destinations(*idx):
            cores[d] = blocks[d].core if d in blocks else plan.block_at(*d).core

    tiles: dict[tuple[int, int], Delayed] = {}
    annotations = {"resources": {"GPU": 1}} if gpu else {}
    for r, c in needed:
        pixels = dask.delayed(read_block, pure=False)(
            pair, blocks[(r, c)], dask_key_name=f"s2c-read-{token}-{r}-{c}")
        tile_job = TileJob(pair=pair, block=blocks[(r, c)], overlap=plan.overlap, model=cfg.model,
                           destinations={d: cores[d] for d in plan.destinations(r, c)}, comparator=comparator)
        with dask.annotate(**annotations):
            tiles[(r, c)] = dask.delayed(predict_tiles, pure=False)(
                tile_job, pixels, dask_key_name=f"s2c-tiles-{token}-{r}-{c}")

    writes = []
    with_classes = cfg.model.identifier != "none"
    for r, c in todo:
        pieces = [
            dask.delayed(operator.getitem, pure=False)(
                tiles[s], (r, c), dask_key_name=f"s2c-piece-{token}-{s[0]}-{s[1]}-{r}-{c}")
            for s in plan.sources(r, c)
        ]
        write_job = WriteJob(index=(r, c), core=blocks[(r, c)].core, model=cfg.model, store=store_path,
                             with_classes=with_classes, threshold=mask_threshold(cfg))
        writes.append(dask.delayed(write_block, pure=False)(
            write_job, *pieces, dask_key_name=f"s2c-write-{token}-{r}-{c}"))
    return writes


def mask_threshold(cfg: Config) -> float | None:
    """The threshold block tasks encode the mask with; ``None`` with Otsu (the mask comes after)."""
    return None if cfg.model.otsu else cfg.model.numeric_threshold("the block tasks")


def build_untiled_graph(
    pair: ScenePair,
    plan: TilePlan,
    cfg: Config,
    store_path: StorePath,
    comparator: FittedComparator,
    *,
    skip: Iterable[tuple[int, int]] = (),
    token: str = "run",
) -> list[Delayed]:
    """One task per block not in ``skip``, row-major: the untiled path (:mod:`~s2c_batch.pipeline.run.untiled`).

    Args:
        pair: the scenes.
        plan: the block plan (its tiles are not used).
        cfg: the run config.
        store_path: the Zarr store.
        comparator: the fitted pointwise or neighbourhood comparator.
        skip: blocks already written.
        token: keeps the keys of different runs apart.

    With ``output.quicklook`` on scenes the quicklook would decode whole, each task keeps
    the quicklook's pixels of its block (:mod:`~s2c_batch.pipeline.products.preview`).
    """
    sampled = cfg.output.quicklook and sampled_from_files(pair.t1) and sampled_from_files(pair.t2)
    preview = panel_shape(pair.grid) if sampled else None
    return [
        dask.delayed(compare_block, pure=False)(
            UntiledJob(index=(r, c), pair=pair, core=plan.block_at(r, c).core, comparator=comparator,
                       threshold=mask_threshold(cfg), store=store_path, strip_rows=cfg.tiling.chunk_size,
                       preview=preview),
            dask_key_name=f"s2c-block-{token}-{r}-{c}")
        for r, c in write_order(plan, skip)
    ]
