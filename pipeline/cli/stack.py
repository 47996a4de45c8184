"""``s2c-batch stack OUT.vrt BAND...``: one multi-band VRT from single-band files."""

from __future__ import annotations

import click

from s2c_batch.pipeline.cli.options import config_option, set_option


@click.command(short_help="Stack single-band rasters into a VRT.")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("bands", nargs=-1, required=True, type=click.Path(dir_okay=False))
@config_option
@set_option
def stack(out: str, bands: tuple[str, ...], config: str | None, overrides: tuple[str, ...]) -> None:
    """Write OUT (a .vrt) whose bands are BANDS in order, e.g. B04 B03 B02 for RGB."""
    from s2c_batch.pipeline.config import load_config
    from s2c_batch.pipeline.inputs.vrt import stack_bands

    click.echo(str(stack_bands(bands, out, load_config(config, overrides).storage)))
