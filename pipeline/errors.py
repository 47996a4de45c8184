"""Pipeline errors, rooted in :class:`s2c_batch.kernels.errors.S2CError`.

Exit codes (the CLI returns ``exc.exit_code``): 2 usage or config; 3 input
(unreadable, mismatched or unusable scenes); 4 output (exists without
``--resume``/``--overwrite``, locked by another run, unwritable); 1 anything else.
"""

from __future__ import annotations

from s2c_batch.kernels.errors import CheckpointError, ConfigError, S2CError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "InputError",
    "OutputError",
    "OutputExistsError",
    "OutputLockedError",
    "S2CError",
    "SceneMismatchError",
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
