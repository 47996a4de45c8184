"""``s2c-batch score``: the paper's binary change metrics of a mask against a truth."""

from __future__ import annotations

import click

from s2c_batch.pipeline.cli.options import config_option, set_option


@click.command(short_help="Score a change mask against a truth raster.")
@click.argument("pred", metavar="PRED.tif", type=click.Path(dir_okay=False))
@click.argument("truth", metavar="TRUTH.tif", type=click.Path(dir_okay=False))
@click.option("--truth-values", type=click.Choice(["auto", "01", "0255", "12"]), default="auto", show_default=True,
              help="Truth encoding: 0/1, 0/255 masks, or OSCD 1/2; auto picks from the values present.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@config_option
@set_option
def score(pred: str, truth: str, truth_values: str, as_json: bool, config: str | None,
          overrides: tuple[str, ...]) -> None:
    """Print F1^c, IoU^c, Kappa, precision, recall and OA of PRED.tif against TRUTH.tif.

    PRED holds 0/1 with 255 = nodata (change_mask.tif); both rasters are read
    window by window, so any scene size works. Exit code 3 on missing files,
    different shapes or unknown values.
    """
    import json

    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.learn.score import format_table, score_rasters

    storage = load_config(config, overrides).storage  # PRED and TRUTH may be URLs
    result = score_rasters(pred, truth, truth_values=truth_values, storage=storage)  # type: ignore[arg-type]
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_table(result))
