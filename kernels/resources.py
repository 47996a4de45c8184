"""Where the packaged configs, vocabularies and demo weights are found.

``setup.cfg`` installs ``configs/`` as data files under ``share/s2c-batch/configs``,
relative to the install prefix, so where they end up depends on how the package
was installed. :func:`packaged_configs_dirs` lists every place, most specific first.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

_SHARE = Path("share") / "s2c-batch" / "configs"


def packaged_configs_dirs() -> list[Path]:
    """Folders that may hold the packaged ``configs/``, in the order they are searched.

    1. ``configs/`` of the source tree (a checkout, or an editable install).
    2. ``share/s2c-batch/configs`` beside the installed package (``pip install --target DIR``).
    3. The same under ``sys.prefix`` (a virtual environment or a system install).
    4. The same under ``site.USER_BASE`` (``pip install --user``).

    Returns:
        The candidate folders, without duplicates; they need not exist.
    """
    package_root = Path(__file__).resolve().parents[1]  # the checkout, or DIR/s2c_batch when installed
    candidates = [
        package_root / "configs",
        package_root.parent / _SHARE,
        Path(sys.prefix) / _SHARE,
        Path(site.USER_BASE or "~/.local").expanduser() / _SHARE,
    ]
    seen: list[Path] = []
    for path in candidates:
        if path not in seen:
            seen.append(path)
    return seen


def packaged_configs_dir() -> Path:
    """The first of :func:`packaged_configs_dirs` that exists (the source tree's when none does)."""
    dirs = packaged_configs_dirs()
    return next((d for d in dirs if d.is_dir()), dirs[0])
