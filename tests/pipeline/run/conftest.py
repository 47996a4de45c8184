"""Fixtures of the recovery and fault tests: one small scene with nodata, and its clean run."""

from __future__ import annotations

from pathlib import Path

import pytest

from testutils import make_pair, run_small


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The pair every fault and recovery test stops and resumes (nodata 0)."""
    return make_pair(tmp_path_factory.mktemp("scene"), 300, 260, seed=5, nodata=0)


@pytest.fixture(scope="module")
def clean(scene: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, dask_cluster) -> Path:  # noqa: ANN001
    """The products of an uninterrupted run of :func:`scene`: what every resumed run must equal."""
    out = tmp_path_factory.mktemp("clean") / "out"
    run_small(scene, out, dask_cluster.address)
    return out
