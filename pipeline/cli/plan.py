"""``s2c-batch plan T1 T2``: the block/tile plan and estimates as JSON; reads no pixels.

With ``--calibrate`` it also runs a handful of real blocks on the cluster (``--scheduler``,
``--cluster``, or a LocalCluster here), measures their costs, and estimates the wall time and
worker-hours of the whole plan on ``--workers N`` (:mod:`~s2c_batch.pipeline.batch.calibrate`).
"""

from __future__ import annotations

import json

import click

from s2c_batch.pipeline.cli.options import bbox_option, cluster_option, config_option, scheduler_address, set_option


@click.command(short_help="Print the block and tile plan as JSON (--calibrate: and its time).")
@click.argument("t1", type=click.Path(dir_okay=False))
@click.argument("t2", type=click.Path(dir_okay=False))
@config_option
@set_option
@bbox_option
@click.option("--calibrate", is_flag=True,
              help="Run a few real blocks on the cluster, measure them, and estimate the plan's wall time.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Workers (GPUs) to estimate for  [default: the calibration cluster's].")
@click.option("--calibrate-blocks", type=click.IntRange(min=1), default=4, show_default=True, metavar="K",
              help="Blocks the calibration runs (a corner of the scene).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Calibrate on this Dask scheduler (tcp://host:8786); default: a LocalCluster here.")
@cluster_option
def plan(t1: str, t2: str, config: str | None, overrides: tuple[str, ...],
         bbox: tuple[float, float, float, float] | None, calibrate: bool, workers: int | None,
         calibrate_blocks: int, scheduler: str | None, cluster: str | None) -> None:
    """Print how a run of T1 and T2 would be cut into blocks and tiles (and, calibrated, how long it takes)."""
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.inputs.scene import open_pair
    from s2c_batch.pipeline.inputs.source import Source
    from s2c_batch.pipeline.run.plan import plan_summary

    cfg = load_config(config, overrides)
    pair = open_pair(t1, t2, cfg.input, bbox=bbox, storage=cfg.storage)
    summary = plan_summary(pair, cfg)
    if calibrate:
        from s2c_batch.pipeline.batch.calibrate import calibrate as run_calibration
        from s2c_batch.pipeline.batch.calibrate import plan_estimate

        with scheduler_address(scheduler, cluster) as address:
            measured = run_calibration(Source.parse(t1), Source.parse(t2), cfg, scheduler=address,
                                       blocks=calibrate_blocks, bbox=bbox)
        summary.update(plan_estimate(pair, cfg, measured, workers))
    elif workers is not None:
        raise click.UsageError("--workers estimates a calibrated plan: give --calibrate too")
    click.echo(json.dumps(summary, indent=2))
