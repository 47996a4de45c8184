"""Options shared by several subcommands."""

from __future__ import annotations

import click

config_option = click.option(
    "--config",
    "config",
    default=None,
    metavar="YAML",
    help="A config file, or the name of a packaged one (default, cva, tiny, demo).",
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override one config key (repeatable), e.g. --set tiling.block_size=1024.",
)
