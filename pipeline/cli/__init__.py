"""The ``s2c-batch`` command line: a thin click layer over the Python API.

One file per subcommand; each is imported only when it runs, so ``--help`` stays
fast and never imports torch or dask.

Exit codes: 0 done; 2 usage or config error; 3 input error; 4 output error;
130 interrupted (Ctrl-C or SIGTERM; the run can be resumed); 1 anything else,
a lost cluster among them (see :mod:`s2c_batch.kernels.errors`). A documented
failure is one ``Error:`` line; ``-v`` adds its traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import traceback

import click

from s2c_batch.kernels.errors import S2CError

#: subcommand name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "run": "s2c_batch.pipeline.cli.run:run",
    "plan": "s2c_batch.pipeline.cli.plan:plan",
    "synth": "s2c_batch.pipeline.cli.synth:synth",
    "score": "s2c_batch.pipeline.cli.score:score",
    "train": "s2c_batch.pipeline.cli.train:train",
    "eval": "s2c_batch.pipeline.cli.eval:eval_",
    "demo": "s2c_batch.pipeline.cli.demo:demo",
    "stack": "s2c_batch.pipeline.cli.stack:stack",
    "batch": "s2c_batch.pipeline.cli.batch:batch",
    "compare": "s2c_batch.pipeline.cli.compare:compare",
    "series": "s2c_batch.pipeline.cli.series:series",
}


#: ``-v`` count minus ``-q`` count of the current invocation.
_verbosity = [0]


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Names of the subcommands whose module is installed."""
        return sorted(name for name in COMMANDS if _module_exists(COMMANDS[name]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the subcommand's module and return its command (``None`` when unknown)."""
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.version_option(package_name="s2c-batch")
def cli(verbose: int, quiet: int) -> None:
    """Seg2Change batch change detection for huge raster pairs on Dask."""
    _verbosity[0] = verbose - quiet
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, level), format="%(levelname)s %(name)s: %(message)s")
    # distributed logs every scheduler and worker event at INFO; keep them for -vv.
    # It reads this setting when first imported, which happens after this point.
    if verbose < 2:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
        # distributed sets its client's logger to WARNING on its own: when the scheduler is
        # lost, the run says so in one line, and the client's reconnect tracebacks are noise.
        logging.getLogger("distributed.client").addFilter(lambda r: r.levelno >= logging.CRITICAL)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and map errors to documented exit codes."""
    _verbosity[0] = 0
    try:
        cli.main(args=argv, prog_name="s2c-batch", standalone_mode=False)
    except S2CError as exc:
        if _verbosity[0] > 0:  # -v: the traceback too
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Interrupted; an interrupted run is finished with --resume.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
