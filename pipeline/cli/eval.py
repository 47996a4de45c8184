"""``s2c-batch eval DATASET``: the paper's change metrics of the configured model on a dataset."""

from __future__ import annotations

import click

from s2c_batch.pipeline.cli.options import config_option, set_option
from s2c_batch.pipeline.learn.presets import EVAL_PRESETS


@click.command("eval", short_help="Score the model on a LEVIR-layout dataset.")
@click.argument("dataset", metavar="DATASET", type=click.Path(file_okay=False))
@config_option
@set_option
@click.option("--targets", default=None, metavar="NAME[,NAME...]",
              help="Target classes of the identifier (replaces model.targets), e.g. building.")
@click.option("--class", "classes", multiple=True, metavar="ID=NAME[+NAME...]",
              help="Semantic scores: dataset class ID (label1/, label2/) = vocabulary names (repeatable).")
@click.option("--preset", type=click.Choice(sorted(EVAL_PRESETS)), default=None,
              help="Semantic scores of SECOND or SC-SCD as the authors compute them (Table 2): their "
                   "vocabulary, class ids and classes; replaces --class and model.vocab.")
@click.option("--fit", "fit", type=click.Choice(["pair", "dataset"]), default="pair", show_default=True,
              help="Fit the fitted comparators (pca_kmeans, irmad, cva with standardize or Otsu, dcva) and Otsu's "
                   "threshold to each image pair (the paper's protocol) or once to the whole dataset.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the metrics as JSON ('-' = stdout instead of the table).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def eval_(dataset: str, config: str | None, overrides: tuple[str, ...], targets: str | None,
          classes: tuple[str, ...], preset: str | None, fit: str, json_path: str | None, progress: bool) -> None:
    """Print F1^c, IoU^c, Kappa, precision, recall and OA over every pair of DATASET (A/, B/, label/).

    One confusion matrix is summed over the dataset, as the authors evaluate. Every
    comparator runs: those fitted to a scene are fitted to each pair, or with --fit dataset
    once to the whole dataset (so is model.threshold: otsu).
    Exit codes: 2 config or checkpoint, 3 dataset, 4 JSON file not writable.
    """
    import json

    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.learn.evaluate import (
        evaluate_dataset,
        format_eval_table,
        parse_semantic_classes,
        write_json,
    )

    cfg = load_config(config, overrides)
    names = [t.strip() for t in targets.split(",") if t.strip()] if targets else []
    result = evaluate_dataset(dataset, cfg, targets=names, semantic_classes=parse_semantic_classes(classes),
                              preset=preset, fit=fit, progress=progress)  # type: ignore[arg-type]
    if json_path == "-":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(format_eval_table(result))
    if json_path:
        write_json(result, json_path)
