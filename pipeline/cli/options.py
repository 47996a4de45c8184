"""Options shared by several subcommands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def _parse_bbox(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3]):
        raise click.BadParameter(
            f"expected minx,miny,maxx,maxy in the scene CRS with min < max, got {value!r}",
            param_hint="--bbox",
        )
    return parts


bbox_option = click.option(
    "--bbox",
    default=None,
    metavar="MINX,MINY,MAXX,MAXY",
    callback=_parse_bbox,
    help="Limit the work to this box, in the scene CRS.",
)

cluster_option = click.option(
    "--cluster",
    "cluster",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="PROFILE.yaml",
    help="Start GPU workers as SLURM or PBS jobs from this cluster profile (deploy/slurm, deploy/pbs); "
         "the jobs end with the command. Not with --scheduler.",
)


@contextlib.contextmanager
def scheduler_address(scheduler: str | None, cluster: str | None) -> Iterator[str | None]:
    """The scheduler the command uses: ``--scheduler``, the engine started from ``--cluster``, or none.

    Raises:
        click.UsageError: both options were given.
    """
    if cluster is None:
        yield scheduler
        return
    if scheduler is not None:
        raise click.UsageError("give --scheduler (a running cluster) or --cluster (start one), not both")
    from s2c_batch.pipeline.cluster.engines import start_engine
    from s2c_batch.pipeline.cluster.profile import load_profile

    with start_engine(load_profile(cluster)) as address:
        yield address
