"""The one atomic-write mechanism for small product files."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError


def test_atomic_path__complete_file_appears_under_its_name(tmp_path: Path) -> None:
    target = tmp_path / "item.json"
    target.write_text("old")
    with atomic_path(target, what="STAC item") as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item.json"]


def test_atomic_path__failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "quicklook.png"
    target.write_text("old")
    with pytest.raises(ValueError, match="boom"), atomic_path(target, what="quicklook") as tmp:
        tmp.write_text("half")
        raise ValueError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quicklook.png"]


def test_atomic_path__os_error_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "changes.parquet"
    with pytest.raises(OutputError, match=r"cannot write change polygons '.*changes\.parquet'"), \
            atomic_path(target, what="change polygons") as tmp:
        tmp.write_text("x")
    assert not target.parent.exists()
