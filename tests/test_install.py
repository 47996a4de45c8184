"""The installed package: our top-level folders never shadow a third-party package of the same name.

``pipeline/`` and ``kernels/`` are namespace portions (no ``__init__.py``), so a regular package
named ``kernels`` or ``pipeline`` anywhere on ``sys.path`` wins over them even when the repository
root comes first (``python -m pytest``, ``python -c`` or a notebook started there, and the Dask
workers such a process spawns). Each case runs in a fresh interpreter started in the repository
root, as a user's would be.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from testutils import REPO


def _python_in_repo(code: str, *, extra_path: Path | None = None) -> str:
    """Run ``code`` with ``python -c`` in the repository root (which puts it first on sys.path);
    ``extra_path`` goes second, right after the root and before site-packages."""
    prelude = f"import sys; sys.path.insert(1, {str(extra_path)!r})\n" if extra_path else ""
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_repository_root_comes_first_in_these_checks() -> None:
    first = _python_in_repo("import sys; print(sys.path[0])")
    assert first == "", "python -c must put the working directory (the repository root) first"
    assert (REPO / "kernels").is_dir() and (REPO / "pipeline").is_dir()


def test_top_level_folders_are_namespace_portions() -> None:
    assert not (REPO / "kernels" / "__init__.py").exists()
    assert not (REPO / "pipeline" / "__init__.py").exists()


@pytest.mark.parametrize("name", ["kernels", "pipeline"])
def test_a_regular_package_of_the_same_name_wins(tmp_path: Path, name: str) -> None:
    site = tmp_path / "site"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text("THIRD_PARTY = True\n")
    out = _python_in_repo(f"""
        import {name}, s2c_batch.kernels.raster.tiling, s2c_batch.pipeline.config
        print({name}.__file__, getattr({name}, "THIRD_PARTY", False))
    """, extra_path=site)
    path, third_party = out.split()
    assert Path(path) == site / name / "__init__.py"
    assert third_party == "True"


def test_transformers_gets_hugging_faces_kernels_from_the_repository_root() -> None:
    try:
        dist = importlib.metadata.distribution("kernels")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("Hugging Face's `kernels` is not installed (transformers >= 5.25 requires it)")
    expected = Path(str(dist.locate_file("kernels/__init__.py"))).resolve()
    out = _python_in_repo("""
        from transformers.integrations import hub_kernels
        import kernels, s2c_batch.kernels
        print(kernels.__file__)
        print(hub_kernels.is_kernels_available())
    """)
    path, available = out.splitlines()
    assert Path(path).resolve() == expected
    assert not Path(path).resolve().is_relative_to(REPO)
    assert available == "True"


def test_sam3_builds_from_the_repository_root() -> None:
    """The failure users met: building SAM 3 imports transformers' hub kernels, which imports `kernels`."""
    out = _python_in_repo("""
        from s2c_batch.kernels.models.identifier import build_sam3_random
        model = build_sam3_random("tiny", image_size=84)
        print(type(model).__name__)
    """)
    assert out == "Sam3Model"
