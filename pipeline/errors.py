"""Pipeline errors, rooted in :class:`s2c_batch.kernels.errors.S2CError`.

Exit codes (the CLI returns ``exc.exit_code``): 2 usage or config; 3 input
(unreadable, mismatched or unusable scenes); 4 output (exists without
``--resume``/``--overwrite``, locked by another run, unwritable); 1 anything else,
among them a lost or failing Dask cluster (:class:`ClusterError`).

Errors raised inside Dask tasks travel back to the client pickled: every class
here takes its message as its only argument, and task functions wear
:func:`portable_errors`, so type and message survive the trip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from s2c_batch.kernels.errors import CheckpointError, ConfigError, S2CError

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "CheckpointError",
    "ClusterError",
    "ConfigError",
    "InputError",
    "OutputError",
    "OutputExistsError",
    "OutputLockedError",
    "S2CError",
    "SceneMismatchError",
    "portable_errors",
]


class InputError(S2CError, ValueError):
    """An input raster is missing, unreadable or unusable (exit code 3)."""

    exit_code = 3


class SceneMismatchError(InputError):
    """t1 and t2 differ in CRS, transform or shape under ``input.align: strict``."""


class OutputError(S2CError, OSError):
    """The output cannot be written (exit code 4)."""

    exit_code = 4


class OutputExistsError(OutputError):
    """The output directory holds a run and neither --resume nor --overwrite was given."""


class OutputLockedError(OutputError):
    """Another live run holds the output directory's lock."""


class ClusterError(S2CError, RuntimeError):
    """The Dask cluster was lost or kept failing a task (exit code 1).

    The blocks written so far are kept: ``--resume`` on a working cluster continues.
    """

    exit_code = 1


def portable_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Make an :class:`S2CError` raised by the Dask task ``fn`` reach the client whole.

    Dask sends a task's error back pickled with its chain of causes (tblib). One
    cause that does not pickle, as GDAL's errors do not, turns the error into a
    plain ``Exception`` holding its repr: the client could no longer tell a damaged
    input (exit 3, not retried) from a bug. The causes' text is in our messages
    already, so the chain is dropped; the traceback stays.
    """

    @functools.wraps(fn)
    def task(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except S2CError as exc:
            error = exc
        error.__cause__ = error.__context__ = None
        raise error  # outside the handler: Python attaches no new context

    return task
