"""``s2c-batch train DATASET... --out HEAD.safetensors``: train the CACH head (the authors' recipe)."""

from __future__ import annotations

import click

from s2c_batch.pipeline.cli.options import config_option, set_option


@click.command(short_help="Train the CACH change head on LEVIR-layout datasets.")
@click.argument("datasets", metavar="DATASET...", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, metavar="HEAD.safetensors", type=click.Path(dir_okay=False),
              help="Head weights (our key layout; set model.cach_checkpoint to it).")
@config_option
@set_option
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Passes over the pairs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Pairs per iteration.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="AdamW learning rate (cosine schedule to 0, stepped every iteration).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Init and shuffling seed.")
@click.option("--val", multiple=True, type=click.Path(file_okay=False), metavar="DATASET",
              help="Score IoU^c after each epoch; --out then keeps the best epoch (repeatable).")
@click.option("--cache-features", "cache_dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Cache the frozen backbone's features here (float16) and reuse them.")
@click.option("--resume", is_flag=True, help="Continue after the last finished epoch (<out stem>.train.pt).")
@click.option("--overwrite", is_flag=True, help="Start again, replacing --out.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar with the loss.")
def train(datasets: tuple[str, ...], out: str, config: str | None, overrides: tuple[str, ...], epochs: int,
          batch_size: int, lr: float, seed: int, val: tuple[str, ...], cache_dir: str | None, resume: bool,
          overwrite: bool, progress: bool) -> None:
    """Train CACH on frozen backbone features of the pairs in DATASET (A/, B/, label/).

    The config's model section picks the backbone (model.backbone,
    model.backbone_checkpoint, model.backbone_input_size, model.normalize).
    Exit codes: 2 config or checkpoint, 3 dataset, 4 --out exists.
    """
    import json

    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.learn.train import TrainOptions, train_change_head

    cfg = load_config(config, overrides)
    options = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    result = train_change_head(datasets, out, cfg.model, options, val=val, resume=resume, overwrite=overwrite,
                               cache_dir=cache_dir, progress=progress)
    click.echo(json.dumps({"out": str(result.out), "state": str(result.state), "epochs": result.epochs,
                           "best_epoch": result.best_epoch, "last": result.history[-1] if result.history else None}))
