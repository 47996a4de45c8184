"""What identifies a run: its fingerprint, and the hashes and version it is made of.

The fingerprint decides whether ``--resume`` may continue a run and whether ``batch``
skips it; it is written to ``run.json``, the store's attributes and the COGs' tags.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.identity import describe_input
from s2c_batch.pipeline.inputs.scene import ScenePair


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
    size: :func:`~s2c_batch.pipeline.inputs.identity.describe_input`) and their external
    masks, the output grid (CRS, transform, shape), the resolved config but its ``cluster``
    section (:meth:`~s2c_batch.pipeline.config.Config.products_hash`), the checkpoint hashes,
    the package version and, when ``input.coregister: global`` corrected t2, the shift
    applied (:attr:`~s2c_batch.pipeline.inputs.grid.WarpSpec.shift_px`).
    """
    doc: dict[str, object] = {
        "t1": describe_input(pair.t1.raster, pair.t1.storage),
        "t2": describe_input(pair.t2.raster, pair.t2.storage),
        "grid": [pair.grid.crs_wkt, list(pair.grid.transform), pair.grid.height, pair.grid.width],
        "config": cfg.products_hash(),
        "checkpoints": checkpoints,
        "version": package_version(),
    }
    for label, source in (("t1", pair.t1), ("t2", pair.t2)):
        if source.mask is not None:
            doc[f"mask_{label}"] = describe_input(source.mask.raster, source.mask.storage)
    if pair.t2.warp is not None and pair.t2.warp.shift_px is not None:
        doc["t2_shift_px"] = [round(v, 6) for v in pair.t2.warp.shift_px]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
