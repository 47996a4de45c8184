"""``s2c-batch run T1 T2 --out DIR``: change products for a pair of scenes."""

from __future__ import annotations

import json

import click

from s2c_batch.pipeline.cli.options import bbox_option, cluster_option, config_option, scheduler_address, set_option


@click.command(short_help="Detect change between two scenes.")
@click.argument("t1", type=click.Path(dir_okay=False))
@click.argument("t2", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder, or s3:// or gs://bucket/prefix.")
@config_option
@set_option
@bbox_option
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine.")
@cluster_option
@click.option("--resume", is_flag=True, help="Finish a previous run here, reusing its written blocks.")
@click.option("--overwrite", is_flag=True, help="Replace a previous run here.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Save Dask's performance report of the run.")
def run(t1: str, t2: str, out: str, config: str | None, overrides: tuple[str, ...],
        bbox: tuple[float, float, float, float] | None, scheduler: str | None,
        cluster: str | None, resume: bool, overwrite: bool, progress: bool, report: str | None) -> None:
    """Write change.zarr, COGs and run.json for scenes T1 and T2 into --out."""
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.run.runner import run_change_detection

    cfg = load_config(config, overrides)
    with scheduler_address(scheduler, cluster) as address:
        result = run_change_detection(t1, t2, out, cfg, scheduler=address, resume=resume,
                                      overwrite=overwrite, bbox=bbox, progress=progress, report=report)
    click.echo(json.dumps({"status": result.status, "out": str(result.out), "blocks": result.blocks,
                           "blocks_reused": result.blocks_reused, "products": result.products}))
