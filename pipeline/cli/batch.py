"""``s2c-batch batch RUNS.yaml``: every scene pair of a runs file on one Dask cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from s2c_batch.pipeline.cli.options import cluster_option, scheduler_address


@click.command(short_help="Run the scene pairs of a RUNS.yaml on one cluster.")
@click.argument("runs_file", metavar="RUNS.yaml", type=click.Path(dir_okay=False))
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786); default: one LocalCluster for the whole batch.")
@cluster_option
@click.option("--summary", default=None, type=click.Path(dir_okay=False), metavar="FILE.json",
              help="Where to write the summary JSON  [default: RUNS.summary.json beside RUNS.yaml].")
@click.option("--max-concurrent", default=2, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Runs in flight at once (their blocks share the cluster).")
@click.option("--report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Save Dask's performance report of the whole batch.")
@click.option("--night-report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Where to write the night's report for people  [default: the summary's name with .html].")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="One line per run on stderr.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Run nothing: calibrate each config on a few blocks and estimate the night (JSON).")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --plan: workers (GPUs) to estimate for  [default: the calibration cluster's].")
def batch(runs_file: str, scheduler: str | None, cluster: str | None, summary: str | None, max_concurrent: int,
          report: str | None, night_report: str | None, progress: bool, plan_only: bool,
          workers: int | None) -> None:
    """Run every pair (and series) in RUNS.yaml; skip complete runs, resume partial ones.

    Prints the summary JSON and writes it to --summary, and the night's report (one
    self-contained HTML page) beside it. Exit code: 0 every run complete or skipped;
    1 some run or series failed (see each one's exit_code in the summary); 2 RUNS.yaml
    or the scheduler is unusable; 130 interrupted.
    """
    from s2c_batch.pipeline.batch.runner import run_batch
    from s2c_batch.pipeline.batch.runs_file import load_runs_file

    runs = load_runs_file(runs_file)
    if plan_only:
        from s2c_batch.pipeline.batch.calibrate import plan_night

        with scheduler_address(scheduler, cluster) as address:
            click.echo(json.dumps(plan_night(runs, scheduler=address, workers=workers,
                                             max_concurrent=max_concurrent), indent=2))
        return
    if workers is not None:
        raise click.UsageError("--workers goes with --plan (a running batch uses the cluster it is given)")
    target = Path(summary) if summary else runs.path.with_name(f"{runs.path.stem}.summary.json")
    with scheduler_address(scheduler, cluster) as address:
        result = run_batch(runs, scheduler=address, max_concurrent=max_concurrent, report=report,
                           summary=target, progress=progress, night_report=night_report)
    click.echo(json.dumps(result.to_dict(), indent=2))
    if result.exit_code:
        click.echo(f"Error: run(s) not complete: {', '.join(result.failed)}; see {target}", err=True)
        sys.exit(result.exit_code)
