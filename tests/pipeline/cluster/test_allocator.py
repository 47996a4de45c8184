"""Model workers reuse freed memory despite the nanny's MALLOC_TRIM_THRESHOLD_."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from distributed import Client

from s2c_batch.pipeline.cluster.allocator import _glibc
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.worker import PredictorPlugin, plugin_name

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt thresholds are glibc's")

_PROBE = (
    "from s2c_batch.pipeline.cluster.allocator import is_mapped_alone, reuse_freed_memory\n"
    "before = is_mapped_alone(4 << 20)\n"
    "ok = reuse_freed_memory()\n"
    "print(before, ok, is_mapped_alone(4 << 20), is_mapped_alone(64 << 20))\n"
)


def _probe(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_reuse_freed_memory__undoes_the_nanny_setting() -> None:
    # What `dask worker` / LocalCluster workers start with: every 4 MiB block is its own mapping.
    before, ok, after, huge = _probe({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert (before, ok, after, huge) == ("True", "True", "False", "True")


def test_reuse_freed_memory__leaves_the_users_choice() -> None:
    before, ok, after, _ = _probe({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert (before, ok, after) == ("True", "False", "True")


@pytest.mark.cluster
def test_predictor_plugin__model_workers_reuse_freed_memory(dask_cluster) -> None:  # noqa: ANN001
    from s2c_batch.pipeline.cluster.allocator import is_mapped_alone

    model = load_config("tiny").model
    with Client(dask_cluster.address, timeout="20s") as client:
        client.register_plugin(PredictorPlugin(model), name=plugin_name(model))
        mapped = client.run(is_mapped_alone, 4 << 20)
    assert len(mapped) == 2 and not any(mapped.values())
