"""The exception hierarchy of s2c-batch.

Every error is an :class:`S2CError` mixed with the builtin it specialises, so
callers can catch either. Each carries the process exit code that the CLI
returns for it (see README, "Exit codes"): 2 usage or config, 3 input, 4 output,
1 anything else. Messages name the file or key at fault and say how to fix it.
"""

from __future__ import annotations


class S2CError(Exception):
    """Base class of every error raised on purpose by s2c-batch."""

    exit_code: int = 1


class ConfigError(S2CError, ValueError):
    """A config file, key or value is wrong (exit code 2)."""

    exit_code = 2


class CheckpointError(ConfigError):
    """A checkpoint named in the config is missing or holds another architecture."""

    exit_code = 2


class FitError(S2CError, ValueError):
    """A comparator cannot be fitted to the scene (too few valid pixels, a constant band): exit code 3."""

    exit_code = 3
