"""The Dask graph: one task per block, no model inside, nothing computed while building."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask
import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.graph import block_jobs, block_tasks
from s2c_batch.pipeline.plan import make_plan
from s2c_batch.pipeline.scene import open_pair
from testutils import make_pair


class CountingScheduler:
    """A dask scheduler that counts calls (xarray's raise_if_dask_computes)."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):  # noqa: ANN001, ANN003, ANN204
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}.")
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes: int = 0):  # noqa: ANN201
    return dask.config.set(scheduler=CountingScheduler(max_computes))


@pytest.fixture
def planned(tmp_path: Path):  # noqa: ANN201
    t1, t2 = make_pair(tmp_path, 1100, 1300)
    cfg = load_config("cva", ["tiling.block_size=512", "tiling.tile_size=256", "tiling.chunk_size=256",
                              "tiling.overlap=64"])
    pair = open_pair(t1, t2, cfg.input)
    return pair, make_plan(pair, cfg), cfg


def test_block_tasks__one_task_per_block_and_nothing_computed(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    with raise_if_dask_computes():
        jobs = block_jobs(pair, plan, cfg, "/nonexistent/change.zarr")
        tasks = block_tasks(jobs, gpu=False, token="t")
    graph = dict(dask.base.collections_to_expr(tasks).__dask_graph__()) if hasattr(
        dask.base, "collections_to_expr") else dict(dask.base.collections_to_dsk(tasks))
    assert len(tasks) == plan.n_blocks == 9
    assert len(graph) == plan.n_blocks


def test_block_jobs__skip_written_blocks(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    jobs = block_jobs(pair, plan, cfg, "x", skip=[(0, 0), (2, 2)])
    assert len(jobs) == 7 and (0, 0) not in {j.block.index for j in jobs}


def test_block_job__small_and_free_of_model_and_pixels(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    job = block_jobs(pair, plan, cfg, "x")[4]
    assert len(pickle.dumps(job)) < 20_000


def test_block_tasks__gpu_annotation(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    tasks = block_tasks(block_jobs(pair, plan, cfg, "x")[:2], gpu=True, token="t")
    layers = tasks[0].__dask_graph__()
    annotations = [getattr(layer, "annotations", None) for layer in getattr(layers, "layers", {}).values()]
    assert {"resources": {"GPU": 1}} in annotations
