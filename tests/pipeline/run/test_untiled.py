"""The untiled path loads nothing it does not need: no torch, no model plugin, a plain LocalCluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from s2c_batch.pipeline.cluster.connect import connect
from s2c_batch.pipeline.config import ClusterConfig

from testutils import make_pair

_PROBE = """
import json, sys
from distributed import Client, LocalCluster
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.run.runner import run_change_detection
from s2c_batch.pipeline.run.worker import plugin_name

t1, t2, out = sys.argv[1:4]
cfg = load_config("cva", ["tiling.block_size=512", "model.comparator=irmad", "model.threshold=otsu"])
with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as cluster, \\
        Client(cluster) as client:
    run_change_detection(t1, t2, out, cfg, scheduler=cluster.scheduler_address, progress=False)
    workers = client.run(lambda dask_worker: ["torch" in sys.modules, sorted(dask_worker.plugins)])
print(json.dumps({"client_torch": "torch" in sys.modules, "workers": list(workers.values()),
                  "plugin": plugin_name(cfg.model)}))
"""


def test_run__untiled_comparator_imports_no_torch_and_registers_no_plugin(tmp_path: Path) -> None:
    t1, t2 = make_pair(tmp_path, 600, 700, seed=4)
    res = subprocess.run([sys.executable, "-c", _PROBE, str(t1), str(t2), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DASK_LOGGING__DISTRIBUTED": "critical"})
    assert res.returncode == 0, res.stderr[-3000:]
    probe = json.loads(res.stdout.strip().splitlines()[-1])
    assert probe["client_torch"] is False
    assert len(probe["workers"]) == 2
    for torch_loaded, plugins in probe["workers"]:
        assert torch_loaded is False
        assert probe["plugin"] not in plugins
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "complete"


def test_connect__numpy_only_runs_one_worker_per_core() -> None:
    with connect(None, ClusterConfig(), numpy_only=True) as client:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == (os.cpu_count() or 1)
        assert all(w["nthreads"] == 1 for w in info.values())
