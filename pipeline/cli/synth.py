"""``s2c-batch synth``: write a synthetic georeferenced pair with planted changes."""

from __future__ import annotations

import click


@click.command(short_help="Write a synthetic t1/t2 pair, or a series of dates, with change truth.")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--size", type=click.IntRange(min=1), required=True, help="Scene side in pixels (e.g. 2048, 40000).")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Generator seed; same seed, same files.")
@click.option("--crs", default="EPSG:32631", show_default=True, help="Projected CRS in metres (0.5 m pixels).")
@click.option("--block", type=click.IntRange(min=256), default=1024, show_default=True,
              help="Window side streamed to disk, a multiple of 256; bounds memory.")
@click.option("--dates", type=click.IntRange(min=5), default=None, metavar="N",
              help="Write a series of N dated scenes instead of a pair (lasting changes, flickers, clouds).")
@click.option("--overwrite", is_flag=True, help="Replace existing t1/t2/truth (or date) files in DIR.")
def synth(out_dir: str, size: int, seed: int, crs: str, block: int, dates: int | None, overwrite: bool) -> None:
    """Write DIR/t1.tif, t2.tif, truth.tif (0/1) and truth_class.tif (change kinds).

    With --dates N: DIR/date_00.tif .. date_<N-1>.tif, five days apart (for `s2c-batch series`),
    and DIR/series.json, what was planted on which date. Refuses (exit code 4) when one of
    the files exists, unless --overwrite.
    """
    if dates is not None:
        from s2c_batch.pipeline.synth.series import write_synthetic_series

        series = write_synthetic_series(out_dir, n_dates=dates, size=size, seed=seed, crs=crs, overwrite=overwrite)
        for path in series.dates:
            click.echo(str(path))
        return
    from s2c_batch.pipeline.synth.pair import CLASS_CODES, write_synthetic_pair

    if block % 256:
        raise click.BadParameter(f"{block} is not a multiple of 256; try 1024.", param_hint="--block")
    pair = write_synthetic_pair(out_dir, size=size, seed=seed, crs=crs, block=block, overwrite=overwrite)
    for path in (pair.t1, pair.t2, pair.truth, pair.truth_class):
        click.echo(str(path))
    codes = ", ".join(f"{k} {v}" for k, v in CLASS_CODES.items())
    click.echo(f"truth_class codes: {codes}", err=True)
