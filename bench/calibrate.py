"""How far ``plan --calibrate`` is from the run it estimates: calibrate on a corner, run the scene, compare.

For each rep: a fresh LocalCluster calibrates on ``--calibrate-blocks`` blocks of a synthetic
square pair (``s2c-batch synth``), the whole scene's wall time is estimated for the calibration's
own worker count, and then the whole scene runs (``run_change_detection``) on a fresh
LocalCluster of the same size, back to back, so that both see the same machine. The
defaults follow ``tests/pipeline/batch/test_calibrate.py`` (the tiny model without the
identifier, blocks of two tile strides) on a 4 x 4-block scene calibrated on its 2 x 2
corner: exactly 4x the calibration's blocks and tile pairs.

Usage::

    python bench/calibrate.py                       # tiny model, 1536 px, 3 reps (~5 min on 2 cores)
    python bench/calibrate.py --config cva --size 8192 --block 2048 --tile 512 --overlap 128

The last line printed is one JSON object: one row per rep (``estimate_s``, ``measured_s``,
``error`` = estimate / measured - 1), the workload, and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--size", type=int, default=1536, help="scene side in pixels")
    parser.add_argument("--block", type=int, default=384, help="tiling.block_size (and chunk_size)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--calibrate-blocks", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=["model.identifier=none"],
                        help="more config overrides (repeatable)")
    args = parser.parse_args()

    from s2c_batch.pipeline.batch.calibrate import calibrate, plan_estimate
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.inputs.scene import open_pair
    from s2c_batch.pipeline.inputs.source import Source
    from s2c_batch.pipeline.run.runner import run_change_detection
    from s2c_batch.pipeline.synth.pair import write_synthetic_pair

    cfg = load_config(args.config, [f"tiling.block_size={args.block}", f"tiling.chunk_size={args.block}",
                                     f"tiling.tile_size={args.tile}", f"tiling.overlap={args.overlap}",
                                     *args.overrides])
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="s2c-bench-calibrate-") as tmp:
        folder = Path(tmp)
        write_synthetic_pair(folder, size=args.size, seed=9)
        t1, t2 = folder / "t1.tif", folder / "t2.tif"
        pair = open_pair(t1, t2, cfg.input)
        for rep in range(args.reps):
            measured = calibrate(Source.parse(t1), Source.parse(t2), cfg, blocks=args.calibrate_blocks)
            planned = plan_estimate(pair, cfg, measured, None)
            t0 = time.perf_counter()
            run_change_detection(t1, t2, folder / f"out-{rep}", cfg, progress=False)
            wall = time.perf_counter() - t0
            est = planned["estimate"]["wall_s"]
            row = {"rep": rep, "estimate_s": est, "measured_s": round(wall, 1),
                   "error": round(est / wall - 1, 3), "calibration_wall_s": measured.sample["wall_s"],
                   "loadavg_1m": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"reps": rows, "workload": planned["workload"], "sample": {
        k: measured.sample[k] for k in ("blocks", "pairs", "megapixels")}, "workers": measured.costs.workers,
        "config": args.config, "cores": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
