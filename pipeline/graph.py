"""Build the Dask graph of a run: one task per output block, nothing computed.

The graph has exactly one task per block still to compute; each task carries a
:class:`~s2c_batch.pipeline.worker.BlockJob` (paths, windows, config), never
pixels or the model. Building it reads no pixels and computes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import dask
from dask.delayed import Delayed

from s2c_batch.kernels.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.scene import ScenePair
from s2c_batch.pipeline.worker import BlockJob, process_block


def block_jobs(
    pair: ScenePair,
    plan: TilePlan,
    cfg: Config,
    store_path: str,
    *,
    skip: Iterable[tuple[int, int]] = (),
) -> list[BlockJob]:
    """The jobs of every block not in ``skip`` (already written), in row-major order."""
    done = set(skip)
    with_classes = cfg.model.identifier != "none"
    return [
        BlockJob(pair=pair, block=b, overlap=plan.overlap, model=cfg.model,
                 store=store_path, with_classes=with_classes)
        for b in plan.blocks()
        if b.index not in done
    ]


def block_tasks(jobs: list[BlockJob], *, gpu: bool, token: str) -> list[Delayed]:
    """One delayed ``process_block`` per job, keyed ``s2c-block-<token>-<row>-<col>``.

    Args:
        jobs: the block jobs.
        gpu: annotate each task with ``resources={"GPU": 1}`` (the cluster has GPU workers).
        token: a run-specific token that keeps keys of different runs apart.
    """
    annotations = {"resources": {"GPU": 1}} if gpu else {}
    tasks = []
    with dask.annotate(**annotations):
        for job in jobs:
            r, c = job.block.index
            tasks.append(
                dask.delayed(process_block, pure=False)(
                    job, dask_key_name=f"s2c-block-{token}-{r}-{c}"
                )
            )
    return tasks
