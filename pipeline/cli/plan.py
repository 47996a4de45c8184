"""``s2c-batch plan T1 T2``: the block/tile plan and estimates as JSON; reads no pixels."""

from __future__ import annotations

import json

import click

from s2c_batch.pipeline.cli.options import bbox_option, config_option, set_option


@click.command(short_help="Print the block and tile plan as JSON.")
@click.argument("t1", type=click.Path(dir_okay=False))
@click.argument("t2", type=click.Path(dir_okay=False))
@config_option
@set_option
@bbox_option
def plan(t1: str, t2: str, config: str | None, overrides: tuple[str, ...],
         bbox: tuple[float, float, float, float] | None) -> None:
    """Print how a run of T1 and T2 would be cut into blocks and tiles."""
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.inputs.scene import open_pair
    from s2c_batch.pipeline.run.plan import plan_summary

    cfg = load_config(config, overrides)
    pair = open_pair(t1, t2, cfg.input, bbox=bbox, storage=cfg.storage)
    click.echo(json.dumps(plan_summary(pair, cfg), indent=2))
