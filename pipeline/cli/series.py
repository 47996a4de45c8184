"""``s2c-batch series SCENE... --out DIR``: a series of acquisitions of one place, night after night."""

from __future__ import annotations

import json

import click

from s2c_batch.pipeline.cli.options import config_option, set_option


@click.command(short_help="Run a series of dates of one place: pairs, persistence, first change.")
@click.argument("scenes", nargs=-1, required=True, metavar="SCENE...")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Series folder, or s3:// or gs://bucket/prefix (pairs, series products, report).")
@click.option("--against", type=click.Choice(["previous", "first"]), default=None,
              help="Pair each date with the one before it, or with the first date  [default: series.against].")
@click.option("--persistence", type=click.IntRange(min=0), default=None, metavar="N",
              help="Further dates a change must last to be lasting  [default: series.persistence].")
@config_option
@set_option
@click.option("--name", default=None, help="The series' name  [default: the --out folder's].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine.")
@click.option("--overwrite", is_flag=True, help="Replace pairs made from other inputs or config.")
@click.option("--night-report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Also write the night's report here (it is always written to --out/report.html).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="One line per pair on stderr.")
def series(scenes: tuple[str, ...], out: str, against: str | None, persistence: int | None, config: str | None,
           overrides: tuple[str, ...], name: str | None, scheduler: str | None, overwrite: bool,
           night_report: str | None, progress: bool) -> None:
    """Run the pairs of SCENE... (ordered by acquisition time) and the series products into --out.

    Pairs already complete in --out are reused, so the next night, given one more scene,
    computes one pair. Prints the night's result as JSON.
    """
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.series.runner import run_series

    extra = [*([f"series.against={against}"] if against else []),
             *([f"series.persistence={persistence}"] if persistence is not None else [])]
    cfg = load_config(config, [*overrides, *extra])
    result = run_series(scenes, out, cfg, name=name, scheduler=scheduler, overwrite=overwrite, progress=progress,
                        night_report=night_report)
    click.echo(json.dumps(result.to_dict(), indent=2))
