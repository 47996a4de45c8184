"""``run.json``: what a run is (fingerprint, inputs, config) and how it went.

Written atomically (temporary file + ``os.replace``) at every status change, so
a crash leaves the last consistent record: ``running`` or ``failed``, never a
``complete`` that is not. On object storage (``path`` an
:class:`~s2c_batch.pipeline.output.location.ObjectLocation` naming the key) each write is
one PUT, which replaces the object whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.identity import describe_input
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.location import ObjectLocation

log = logging.getLogger(__name__)


def package_version() -> str:
    """The installed s2c-batch version."""
    try:
        return version("s2c-batch")
    except PackageNotFoundError:  # pragma: no cover - always installed in practice
        return "0+unknown"


def checkpoint_paths(cfg: Config) -> dict[str, str]:
    """``model.*_checkpoint`` keys that name a path, and their paths."""
    return {
        f"model.{k}": str(v)
        for k, v in vars(cfg.model).items()
        if k.endswith("checkpoint") and v
    }


def hash_path(path: str) -> str:
    """SHA-256 of a file, or of a folder's (relative name, size, mtime) listing."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p)}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
        return "dir-sha256:" + h.hexdigest()
    if not p.is_file():
        return "missing"
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def fingerprint(pair: ScenePair, cfg: Config, checkpoints: dict[str, str]) -> str:
    """Hash of everything that determines the products.

    Covers the inputs (path, size, mtime; a remote one's URL, ETag, Last-Modified and
    size: :func:`~s2c_batch.pipeline.inputs.identity.describe_input`), the output grid (CRS, transform,
    shape), the resolved config but its ``cluster`` section
    (:meth:`~s2c_batch.pipeline.config.Config.products_hash`), the checkpoint hashes
    and the package version.
    """
    doc = {
        "t1": describe_input(pair.t1.path, pair.t1.storage),
        "t2": describe_input(pair.t2.path, pair.t2.storage),
        "grid": [pair.grid.crs_wkt, list(pair.grid.transform), pair.grid.height, pair.grid.width],
        "config": cfg.products_hash(),
        "checkpoints": checkpoints,
        "version": package_version(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass
class RunLog:
    """The mutable record behind ``run.json``."""

    path: Path | ObjectLocation
    data: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    @classmethod
    def read(cls, path: Path | ObjectLocation) -> dict[str, Any] | None:
        """The content of an existing ``run.json``, or ``None``."""
        try:
            if isinstance(path, ObjectLocation):
                out, name = path.split()
                raw = out.read(name)
                return None if raw is None else json.loads(raw)
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def update(self, **values: Any) -> None:
        """Set top-level fields and write the file."""
        self.data.update(values)
        self.write()

    def timing(self, stage: str, seconds: float) -> None:
        """Record a stage's wall time (seconds) and write the file."""
        self.data.setdefault("timings_s", {})[stage] = round(seconds, 4)
        self.write()

    def update_quietly(self, **values: Any) -> bool:
        """Like :meth:`update`, but a failed write is logged, not raised.

        For recording a failure: a full disk must not hide the error that stopped the
        run. The file then keeps its last record (``running``), which resumes the same way.

        Returns:
            True when the file was written.
        """
        try:
            self.update(**values)
        except OutputError as exc:
            log.warning("run.json keeps its previous record: %s", exc)
            return False
        return True

    def write(self) -> None:
        """Write atomically: temporary file, fsync, rename.

        Raises:
            OutputError: the file cannot be written (a full disk); the previous
                ``run.json`` stays as it was.
        """
        if isinstance(self.path, ObjectLocation):
            self._put(self.path)
            return
        with atomic_path(self.path, what="run record", sync=True, failure="writing {path} failed") as tmp:
            tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str))

    def _put(self, location: ObjectLocation) -> None:
        """Write the record as the object ``location`` names (one PUT: old or new, never part)."""
        from s2c_batch.pipeline.output.objects import output_error

        out, name = location.split()
        try:
            out.write(name, json.dumps(self.data, indent=2, sort_keys=False, default=str).encode())
        except Exception as exc:
            raise output_error(out, name, exc) from exc
