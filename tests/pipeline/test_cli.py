"""The ``s2c-batch`` command group itself (subcommands have their own test files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from s2c_batch.pipeline.cli import COMMANDS, main

# A lean environment may start without importlib.util loaded (nothing at start-up imported it):
# the command group must import what it uses, not rely on other packages having done so.
_WITHOUT_IMPORTLIB_UTIL = """
import importlib, sys
sys.modules.pop("importlib.util", None)
if hasattr(importlib, "util"):
    delattr(importlib, "util")
from s2c_batch.pipeline.cli import main
for name in sys.argv[1:]:
    try:
        main([name, "--help"])
    except SystemExit as exc:
        assert not exc.code, (name, exc.code)
"""


def test_cli__every_subcommand_answers_help_without_importlib_util_preloaded() -> None:
    out = subprocess.run([sys.executable, "-c", _WITHOUT_IMPORTLIB_UTIL, *COMMANDS], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in COMMANDS:
        assert f"Usage: s2c-batch {name}" in out.stdout, name


def test_main__documented_failure_is_one_line_and_v_adds_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", str(tmp_path / "missing.tif"), str(tmp_path / "missing.tif"), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 3 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ") and "missing.tif" in err
    with pytest.raises(SystemExit) as exc:
        main(["-v", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 3 and "Traceback (most recent call last)" in err and "InputError" in err
