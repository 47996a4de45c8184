"""Finding the packaged configs and vocabularies however the package was installed."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s2c_batch.kernels import resources
from s2c_batch.kernels.resources import packaged_configs_dir, packaged_configs_dirs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(Path(resources.__file__).resolve().parents[1] != REPO,
                    reason="the package is not imported from this checkout (not an editable install)")
def test_packaged_configs_dir__the_checkout_first() -> None:
    assert packaged_configs_dirs()[0] == REPO / "configs"
    assert packaged_configs_dir() == REPO / "configs"
    assert Path(sys.prefix) / "share" / "s2c-batch" / "configs" in packaged_configs_dirs()


_PROBE = """
import s2c_batch.kernels, s2c_batch.pipeline.config as c
from s2c_batch.kernels.models.identifier.vocab import load_vocabulary
print(list(s2c_batch.kernels.__path__)[0])  # a namespace package: no __file__
print(c.configs_dir())
print(c.load_config("default").model.vocab, load_vocabulary("whu_levir").class_names[-1],
      load_vocabulary("tiny").prompts[0])
"""


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build the package")
def test_packaged_configs__found_after_pip_install_target(tmp_path: Path) -> None:
    """``pip install --target DIR`` puts the configs in DIR/share, not under sys.prefix (the GPU bench does this)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in ("pipeline", "kernels", "configs", "src"):  # src/s2c_batch links pipeline/ and kernels/
        shutil.copytree(REPO / folder, src / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(target), str(src)], check=True, capture_output=True)
    shutil.rmtree(src)  # nothing may come from the source tree
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    module, configs, values = out.stdout.strip().splitlines()
    assert Path(module).is_relative_to(target)  # the installed copy, not the checkout
    assert Path(configs) == target / "share" / "s2c-batch" / "configs"
    assert values.split() == ["whu_levir", "building", "background"]
