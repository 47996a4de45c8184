"""The Dask graph: one task per block, no model inside, nothing computed while building."""

from __future__ import annotations

import pickle
from pathlib import Path

import dask
import pytest

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.run.graph import build_graph
from s2c_batch.pipeline.run.plan import make_plan

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


def _graph(tasks: list) -> dict:  # noqa: ANN001
    return dict(dask.base.collections_to_expr(tasks).__dask_graph__())


def test_build_graph__o_blocks_tasks_each_tile_once_and_nothing_computed(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    with raise_if_dask_computes():
        writes = build_graph(pair, plan, cfg, "/nonexistent/change.zarr", token="t")
    graph = _graph(writes)
    kinds = [str(k).split("-")[1] for k in graph]
    assert len(writes) == plan.n_blocks == 9
    assert kinds.count("tiles") == 9 and kinds.count("write") == 9 and kinds.count("read") == 9
    assert kinds.count("piece") == sum(len(plan.sources(*b.index)) for b in plan.blocks()) == 25
    assert sum(len(b.tiles) for b in plan.blocks()) == plan.n_tiles  # each tile predicted once


def test_build_graph__resume_skips_written_blocks(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    writes = build_graph(pair, plan, cfg, "x", skip=[(0, 0), (0, 1), (1, 0), (2, 2)], token="t")
    kinds = [str(k).split("-")[1] for k in _graph(writes)]
    assert len(writes) == 5 and kinds.count("write") == 5
    # (0, 0) is still needed: its tiles reach (1, 1), which is not written yet.
    assert kinds.count("tiles") == 8


def test_tile_job__small_and_free_of_model_and_pixels(planned) -> None:  # noqa: ANN001
    from s2c_batch.pipeline.run.worker import TileJob

    pair, plan, cfg = planned
    job = TileJob(pair=pair, block=plan.block_at(1, 1), overlap=plan.overlap, model=cfg.model,
                  destinations={(1, 1): plan.block_at(1, 1).core})
    assert len(pickle.dumps(job)) < 20_000


def test_build_graph__gpu_annotation_on_tile_tasks(planned) -> None:  # noqa: ANN001
    pair, plan, cfg = planned
    writes = build_graph(pair, plan, cfg, "x", gpu=True, token="t")
    layers = writes[0].__dask_graph__().layers
    annotated = {name.split("-")[1] for name, layer in layers.items()
                 if (getattr(layer, "annotations", None) or {}).get("resources") == {"GPU": 1}}
    assert annotated == {"tiles"}
