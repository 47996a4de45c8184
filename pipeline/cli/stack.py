"""``s2c-batch stack OUT.vrt BAND...``: one multi-band VRT from single-band files."""

from __future__ import annotations

import click


@click.command(short_help="Stack single-band rasters into a VRT.")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("bands", nargs=-1, required=True, type=click.Path(dir_okay=False))
def stack(out: str, bands: tuple[str, ...]) -> None:
    """Write OUT (a .vrt) whose bands are BANDS in order, e.g. B04 B03 B02 for RGB."""
    from s2c_batch.pipeline.inputs.vrt import stack_bands

    click.echo(str(stack_bands(bands, out)))
