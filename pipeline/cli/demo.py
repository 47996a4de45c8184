"""``s2c-batch demo``: synthesise a pair, run the whole pipeline with the demo model, score it."""

from __future__ import annotations

import click

from s2c_batch.pipeline.cli.options import set_option


@click.command(short_help="Run the pipeline on a synthetic pair with the small demo model.")
@click.option("--out", default="s2c-demo", show_default=True, type=click.Path(file_okay=False),
              help="Demo folder: scene/ (inputs, truth), run/ (products), score.json.")
@click.option("--size", type=click.IntRange(min=256), default=1024, show_default=True,
              help="Side of the synthetic scene in pixels.")
@click.option("--seed", type=click.IntRange(min=0), default=20260, show_default=True,
              help="Scene seed; the demo model saw seeds 1-24 (training) and 901, 902 (selection).")
@set_option
@click.option("--overwrite", is_flag=True, help="Replace a previous demo in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
def demo(out: str, size: int, seed: int, overrides: tuple[str, ...], overwrite: bool, as_json: bool,
         progress: bool) -> None:
    """Synthesise a pair with planted changes and detect them with configs/demo.yaml.

    Runs on a LocalCluster and prints where the products are and their F1^c, IoU^c, Kappa
    against the truth.

    Exit codes: 2 demo weights missing, 4 --out holds a previous demo (use --overwrite).
    """
    import json

    from s2c_batch.pipeline.synth.demo import format_demo, run_demo

    result = run_demo(out, size=size, seed=seed, overwrite=overwrite, overrides=overrides, progress=progress)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_demo(result))
