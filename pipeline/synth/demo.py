"""``s2c-batch demo``: the whole pipeline on a fresh machine, with the small demo model.

Synthesises a pair (``s2c-batch synth``) with a seed the demo model was not
trained on, runs :func:`s2c_batch.pipeline.run.runner.run_change_detection` on a
LocalCluster with ``configs/demo.yaml`` and scores ``change_mask.tif`` against
the synthetic ``truth.tif`` (:func:`s2c_batch.pipeline.learn.score.score_rasters`)::

    OUT/scene/t1.tif, t2.tif, truth.tif, truth_class.tif     the synthetic pair
    OUT/run/change.zarr, change_prob.tif, change_mask.tif, run.json
    OUT/score.json                                            F1^c, IoU^c, Kappa, ...

The demo model (``configs/demo/``) is a 64-wide DINOv2-layout ViT plus CACH,
trained on synthetic scenes by ``scripts/train_demo_model.py``; it detects change
only (``model.identifier: none``), because SAM 3 has no small trained weights.

Checkpoint paths in a config file are relative to that file's folder
(:func:`~s2c_batch.pipeline.config.load_config`), so ``configs/demo.yaml`` names
``demo/cach.safetensors``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.config import Config, load_config
from s2c_batch.pipeline.errors import CheckpointError, OutputError, OutputExistsError
from s2c_batch.pipeline.learn.score import ScoreResult, format_table, score_rasters

log = logging.getLogger(__name__)

#: Default scene seed; the demo model's training seeds (``scripts/train_demo_model.py``) exclude it.
DEMO_SEED: int = 20260
#: Default scene side in pixels.
DEMO_SIZE: int = 1024


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced.

    Attributes:
        out: the demo folder.
        scene: folder of the synthetic pair and its truth.
        run: the run's output folder.
        products: product name -> path.
        score: ``change_mask.tif`` against ``truth.tif``.
        seconds: wall time per stage (``synth``, ``run``, ``score``, ``total``).
    """

    out: Path
    scene: Path
    run: Path
    products: dict[str, str]
    score: ScoreResult
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"out": str(self.out), "scene": str(self.scene), "run": str(self.run), "products": self.products,
                "score": self.score.to_dict(), "seconds": {k: round(v, 2) for k, v in self.seconds.items()}}


def load_demo_config(config: str = "demo", overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """The demo config with its weights located and checked.

    Raises:
        CheckpointError: the demo weights are missing (exit code 2), naming the
            file and how to recreate it.
    """
    cfg = load_config(config, overrides)
    for key in cfg.model.required_checkpoints():
        value = getattr(cfg.model, key)
        if value is None or not Path(value).exists():
            raise CheckpointError(
                f"model.{key} = {value!r} of config {config!r} does not exist; the demo weights ship in "
                "configs/demo/ - reinstall s2c-batch, or recreate them with "
                "`python scripts/train_demo_model.py`"
            )
    return cfg


def run_demo(
    out: str | os.PathLike[str] = "s2c-demo",
    *,
    size: int = DEMO_SIZE,
    seed: int = DEMO_SEED,
    overwrite: bool = False,
    config: str = "demo",
    overrides: tuple[str, ...] | list[str] = (),
    progress: bool = True,
) -> DemoResult:
    """Synthesise a pair, detect its changes with the demo model, score them.

    Args:
        out: the demo folder (refused when it holds a previous demo, unless ``overwrite``).
        size: scene side in pixels.
        seed: synthetic scene seed (use one the demo model was not trained on).
        overwrite: replace a previous demo in ``out``.
        config: the config to run (``demo``).
        overrides: ``SECTION.KEY=VALUE`` overrides.
        progress: progress bars on stderr.

    Returns:
        Paths, scores and timings (also written to ``out/score.json``).

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is false (exit code 4).
        CheckpointError: the demo weights are missing (exit code 2).
    """
    from s2c_batch.pipeline.run.runner import run_change_detection
    from s2c_batch.pipeline.synth.pair import write_synthetic_pair

    t0 = time.perf_counter()
    cfg = load_demo_config(config, overrides)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise OutputError(f"--out {str(root)!r} exists and is not a folder; choose another path")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"--out {str(root)!r} is not empty (a previous demo?); pass --overwrite to replace it "
                "or choose another --out"
            )
        for name in ("scene", "run", "score.json"):
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    scene, run_dir = root / "scene", root / "run"
    timings: dict[str, float] = {}
    if progress:
        print(f"s2c-batch demo: synthesising a {size} x {size} pair (seed {seed}) in {scene}", file=sys.stderr)
    pair = write_synthetic_pair(scene, size=size, seed=seed, overwrite=True)
    timings["synth"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    result = run_change_detection(pair.t1, pair.t2, run_dir, cfg, overwrite=True, progress=progress)
    timings["run"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    score = score_rasters(run_dir / "change_mask.tif", pair.truth, truth_values="01")
    timings["score"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    demo = DemoResult(out=root.resolve(), scene=scene.resolve(), run=run_dir.resolve(),
                      products=dict(result.products), score=score, seconds=timings)
    with atomic_path(root / "score.json", what="demo score") as tmp:
        tmp.write_text(json.dumps(demo.to_dict(), indent=2) + "\n")
    return demo


def format_demo(result: DemoResult) -> str:
    """A short report: where the inputs and products are, and the scores."""
    lines = [f"synthetic pair: {result.scene}/t1.tif, t2.tif (truth: truth.tif, truth_class.tif)",
             f"products:       {result.run}"]
    lines += [f"  {name}" for name in sorted(result.products)]
    lines.append("score of change_mask.tif against truth.tif:")
    lines.append(format_table(result.score))
    sec = result.seconds
    lines.append(f"time: {sec['total']:.1f} s (synth {sec['synth']:.1f} s, run {sec['run']:.1f} s, "
                 f"score {sec['score']:.1f} s)")
    return "\n".join(lines)
