"""Write a synthetic georeferenced pair with planted changes, streamed block by block.

The scene itself (content, class codes, block-size invariance) is described in
:mod:`s2c_batch.pipeline.synth.scene_model`; this module writes ``t1.tif``, ``t2.tif``,
``truth.tif`` (0/1) and ``truth_class.tif`` (codes :data:`CLASS_CODES`) one
window at a time, so a 40000 x 40000 pair needs only one window in memory.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from s2c_batch.pipeline.errors import ConfigError, OutputError, OutputExistsError
from s2c_batch.pipeline.synth.scene_model import CLASS_CODES, GENERATOR_VERSION, SyntheticBlock, render_window

__all__ = ["CLASS_CODES", "TILE", "SyntheticBlock", "SyntheticPair", "render_window", "write_synthetic_pair"]

log = logging.getLogger(__name__)

#: GeoTIFF tile side; ``block`` must be a multiple of it.
TILE: int = 256


@dataclass(frozen=True)
class SyntheticPair:
    """Paths and grid of a written synthetic pair.

    Attributes:
        t1: 3-band uint8 RGB GeoTIFF of the first date.
        t2: same for the second date.
        truth: uint8 0/1 change truth.
        truth_class: uint8 change class codes (:data:`CLASS_CODES`).
        size: scene side in pixels.
        seed: generator seed.
        crs: CRS of the four files (user input string).
        transform: affine transform of the four files.
    """

    t1: Path
    t2: Path
    truth: Path
    truth_class: Path
    size: int
    seed: int
    crs: str
    transform: Affine


# ----------------------------------------------------------------- writing


def _default_origin(crs: object, extent: float) -> tuple[float, float]:
    """Top-left (x, y) of a plausible scene in ``crs``: near Paris for UTM north, else the area of use."""
    epsg = crs.to_epsg()  # type: ignore[attr-defined]
    if epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        return 440000.0, 5420000.0
    import pyproj

    wkt = crs.to_wkt()  # type: ignore[attr-defined]
    target = pyproj.CRS.from_epsg(epsg) if epsg is not None else pyproj.CRS.from_wkt(wkt)
    area = target.area_of_use
    if area is None:  # no area of use known: put the scene at the projection's false origin
        return 0.0, float(extent)
    lon, lat = (area.west + area.east) / 2, (area.south + area.north) / 2
    x, y = pyproj.Transformer.from_crs("EPSG:4326", target, always_xy=True).transform(lon, lat)
    return float(np.floor((x - extent / 2) / 1000) * 1000), float(np.ceil((y + extent / 2) / 1000) * 1000)


def write_synthetic_pair(
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    seed: int,
    crs: str = "EPSG:32631",
    block: int = 1024,
    overwrite: bool = False,
    resolution: float = 0.5,
    origin: tuple[float, float] | None = None,
) -> SyntheticPair:
    """Write ``t1.tif``, ``t2.tif``, ``truth.tif`` and ``truth_class.tif`` into ``out_dir``.

    Streams ``block`` x ``block`` windows (only one window is in memory) into
    tiled (256), deflate-compressed GeoTIFFs written under temporary names and
    renamed when complete. Same arguments give byte-identical files.

    Args:
        out_dir: output directory, created if missing.
        size: scene side in pixels (square scene).
        seed: generator seed (>= 0).
        crs: a projected CRS in metres (any rasterio CRS input).
        block: window side for writing, a positive multiple of 256.
        overwrite: replace existing output files instead of refusing.
        resolution: pixel size in CRS units (0.5 m).
        origin: top-left ``(x, y)``; default near Paris for UTM north zones
            (440000 E, 5420000 N), else the CRS's area of use.

    Returns:
        The paths and grid.

    Raises:
        ConfigError: bad size, seed, block or CRS (exit code 2).
        OutputExistsError: an output file exists and ``overwrite`` is false (exit code 4).
        OutputError: the directory cannot be created or written (exit code 4).
    """
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError
    from rasterio.windows import Window

    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"size must be a positive number of pixels, got {size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(block, int) or block < TILE or block % TILE:
        raise ConfigError(f"block must be a positive multiple of {TILE}, got {block!r}; try --block 1024")
    try:
        crs_obj = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ConfigError(f"--crs {crs!r} is not a CRS rasterio understands ({exc}); use e.g. EPSG:32631") from exc
    if not crs_obj.is_projected:
        raise ConfigError(f"--crs {crs!r} is not projected; synth needs metres, use a UTM zone e.g. EPSG:32631")
    x0, y0 = origin if origin is not None else _default_origin(crs_obj, size * resolution)
    transform = Affine(resolution, 0.0, x0, 0.0, -resolution, y0)

    out = Path(out_dir)
    names = {"t1": "t1.tif", "t2": "t2.tif", "truth": "truth.tif", "truth_class": "truth_class.tif"}
    paths = {k: out / v for k, v in names.items()}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {str(out)!r}: {exc}") from exc
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]!r} already exists; pass --overwrite to replace it or choose another DIR")
    temps = {k: p.with_name(f".{p.name}.partial") for k, p in paths.items()}

    common = dict(driver="GTiff", width=size, height=size, dtype="uint8", crs=crs_obj, transform=transform,
                  tiled=True, blockxsize=TILE, blockysize=TILE, compress="deflate", BIGTIFF="IF_SAFER")
    tags = dict(S2C_SYNTH_SEED=str(seed), S2C_SYNTH_SIZE=str(size), S2C_SYNTH_VERSION=str(GENERATOR_VERSION))
    try:
        with (
            rasterio.open(temps["t1"], "w", count=3, photometric="RGB", predictor=2, **common) as d1,
            rasterio.open(temps["t2"], "w", count=3, photometric="RGB", predictor=2, **common) as d2,
            rasterio.open(temps["truth"], "w", count=1, **common) as dt,
            rasterio.open(temps["truth_class"], "w", count=1, **common) as dc,
        ):
            for ds, date in ((d1, "t1"), (d2, "t2")):
                ds.update_tags(DATE=date, **tags)
                ds.descriptions = ("red", "green", "blue")
            dt.update_tags(VALUES="0 = no change, 1 = change", **tags)
            dc.update_tags(CLASS_CODES=json.dumps(CLASS_CODES), **{f"CLASS_{k}": v for k, v in CLASS_CODES.items()},
                           **tags)
            for row in range(0, size, block):
                for col in range(0, size, block):
                    b = render_window(seed=seed, size=size, row_off=row, col_off=col, height=block, width=block)
                    win = Window(col, row, b.truth_class.shape[1], b.truth_class.shape[0])
                    d1.write(b.t1, window=win)
                    d2.write(b.t2, window=win)
                    dt.write(b.truth, 1, window=win)
                    dc.write(b.truth_class, 1, window=win)
                log.debug("synth: rows %d-%d of %d written", row, min(size, row + block), size)
        for k in paths:
            os.replace(temps[k], paths[k])
    except OSError as exc:
        raise OutputError(f"cannot write the synthetic pair into {str(out)!r}: {exc}") from exc
    finally:
        for t in temps.values():
            t.unlink(missing_ok=True)
    return SyntheticPair(paths["t1"], paths["t2"], paths["truth"], paths["truth_class"], size, seed, crs, transform)
