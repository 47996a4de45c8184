"""Fixtures shared by the whole suite: a real Dask cluster and shared-data paths."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testutils import SHARED, RealCluster, real_cluster  # noqa: E402

# Quiet the scheduler and worker logs that distributed prints at INFO.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A real scheduler and two worker processes, shared by the tests of one session."""
    with real_cluster(tmp_path_factory.mktemp("dask-logs"), workers=2) as cluster:
        yield cluster


@pytest.fixture
def shared_data() -> Path:
    """The real imagery in ../shared/data; skips when this checkout has none beside it."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real imagery not available: {data} is absent (it sits beside the repository)")
    return data
