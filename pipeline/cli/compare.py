"""``s2c-batch compare T1 T2 --out DIR --comparators ...``: comparators side by side on one scene pair."""

from __future__ import annotations

import json

import click

from s2c_batch.pipeline.cli.options import bbox_option, cluster_option, config_option, scheduler_address, set_option


@click.command(short_help="Run several comparators on one pair and tabulate them.")
@click.argument("t1", type=click.Path(dir_okay=False))
@click.argument("t2", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Output folder, s3:// or gs://bucket/prefix; each comparator writes DIR/<comparator>/, "
                   "the table DIR/compare.json.")
@click.option("--comparators", required=True, metavar="NAME,...",
              help="Comparators in table order: cach, cva, pca_kmeans, irmad, dcva, anychange, inst_ceg, "
                   "dynamicearth, ucd_scm.")
@click.option("--truth", default=None, type=click.Path(dir_okay=False), metavar="TRUTH.tif",
              help="Change truth on T1's grid: scores every comparator.")
@click.option("--truth-values", type=click.Choice(["auto", "01", "0255", "12"]), default="auto", show_default=True,
              help="Truth encoding: 0/1, 0/255 masks, or OSCD 1/2; auto picks from the values present.")
@config_option
@set_option
@bbox_option
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786); default: one LocalCluster for every comparator.")
@cluster_option
@click.option("--resume", is_flag=True, help="Finish previous runs in DIR, reusing their blocks.")
@click.option("--overwrite", is_flag=True, help="Replace previous runs in DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print compare.json instead of the table.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress on stderr.")
def compare(t1: str, t2: str, out: str, comparators: str, truth: str | None, truth_values: str,
            config: str | None, overrides: tuple[str, ...], bbox: tuple[float, float, float, float] | None,
            scheduler: str | None, cluster: str | None, resume: bool, overwrite: bool, as_json: bool,
            progress: bool) -> None:
    """Run every comparator on T1 and T2 on one cluster and print F1^c, IoU^c, Kappa, ... per comparator.

    --set applies to every comparator (model.standardize to the classical ones only;
    ucd_scm always thresholds by Otsu).
    Exit codes as for run: 2 config, 3 input, 4 output.
    """
    from s2c_batch.pipeline.batch.compare import format_comparison, parse_comparators, run_comparison
    from s2c_batch.pipeline.config import load_comparator_configs
    from s2c_batch.pipeline.run.context import RunOptions

    names = parse_comparators(comparators)
    configs = load_comparator_configs(config, overrides, names)
    with scheduler_address(scheduler, cluster) as address:
        options = RunOptions(scheduler=address, resume=resume, overwrite=overwrite, bbox=bbox, progress=progress)
        result = run_comparison(t1, t2, out, configs, truth=truth, truth_values=truth_values,  # type: ignore[arg-type]
                                options=options)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_comparison(result))
