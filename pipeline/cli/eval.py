"""``s2c-batch eval DATASET``: the paper's change metrics of the configured model on a dataset."""

from __future__ import annotations

import dataclasses

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
@click.option("--comparators", default=None, metavar="NAME,...",
              help="Score several comparators side by side (cva,pca_kmeans,irmad,...): the table of compare, "
                   "written as JSON to --json (default eval.json); --set applies as in compare.")
@click.option("--paper", default=None, metavar="DATASET",
              help="Show the paper's own figures (Tables 1-2) of this dataset beside ours: whu_cd, levir_cd, "
                   "dsifn, clcd, second, sc_scd (configs/paper/seg2change.yaml).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the metrics as JSON ('-' = stdout instead of the table).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def eval_(dataset: str, config: str | None, overrides: tuple[str, ...], targets: str | None,
          classes: tuple[str, ...], preset: str | None, fit: str, comparators: str | None, paper: str | None,
          json_path: str | None, progress: bool) -> None:
    """Print F1^c, IoU^c, Kappa, precision, recall and OA over every pair of DATASET (A/, B/, label/).

    One confusion matrix is summed over the dataset, as the authors evaluate. Every
    comparator runs: those fitted to a scene are fitted to each pair, or with --fit dataset
    once to the whole dataset (so is model.threshold: otsu).
    Exit codes: 2 config or checkpoint, 3 dataset, 4 JSON file not writable.
    """
    import json

    from s2c_batch.pipeline.learn.evaluate import parse_semantic_classes

    names = [t.strip() for t in targets.split(",") if t.strip()] if targets else []
    semantic = parse_semantic_classes(classes)
    if comparators is not None:
        _side_by_side(dataset, config, overrides, comparators, names, semantic, preset, fit, paper, json_path, progress)
        return
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.learn.evaluate import evaluate_dataset, format_eval_table, write_json
    from s2c_batch.pipeline.learn.paper import load_paper_table, paper_block

    cfg = load_config(config, overrides)
    block = paper_block(load_paper_table(), paper, cfg) if paper is not None else None
    result = evaluate_dataset(dataset, cfg, targets=names, semantic_classes=semantic, preset=preset,
                              fit=fit, progress=progress)  # type: ignore[arg-type]
    result = dataclasses.replace(result, paper=block)
    if json_path == "-":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(format_eval_table(result))
    if json_path:
        write_json(result, json_path)


def _side_by_side(dataset: str, config: str | None, overrides: tuple[str, ...], comparators: str,
                  targets: list[str], semantic: dict[int, tuple[str, ...]], preset: str | None, fit: str,
                  paper: str | None, json_path: str | None, progress: bool) -> None:
    """``eval --comparators``: the table of every comparator, printed and written as JSON."""
    import json

    from s2c_batch.pipeline.batch.compare import parse_comparators
    from s2c_batch.pipeline.config import load_comparator_configs
    from s2c_batch.pipeline.learn.eval_table import evaluate_comparators, format_eval_comparison, write_table

    configs = load_comparator_configs(config, overrides, parse_comparators(comparators))
    table = evaluate_comparators(dataset, configs, fit=fit, targets=targets, semantic_classes=semantic,  # type: ignore[arg-type]
                                 preset=preset, paper=paper, progress=progress)
    if json_path == "-":
        click.echo(json.dumps(table.to_dict(), indent=2))
        return
    click.echo(format_eval_comparison(table))
    written = write_table(table, json_path or "eval.json")
    click.echo(f"table: {written}")
