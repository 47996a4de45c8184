"""The series products on the common grid, block by block: ``series.zarr`` and its COGs.

One Dask task per output block (:func:`series_block`) reads the block's ``change_mask`` of
every pair (in date order), applies the per-pixel series maths
(:func:`~s2c_batch.kernels.raster.series.series_products`) and writes ``first_change``,
``change_count`` and ``persistent_change`` into ``series.zarr`` (one shard per block, as a
run's store). It also returns, small, what the night's report and the series record
need: per pair its changed and unknown pixels and area, and the pixels and area of lasting
change per first date. So the series' statistics cost no second read of the pairs.

The store is made afresh each night (the pairs' masks are the truth; the series products
follow from them), then the COGs are written from it, then its metadata is consolidated.
Encodings: uint8, 255 = unknown (no pair knows the pixel); ``first_change`` holds a date
index whose date is in the lookup table (the store's and the COGs' ``dates``, and
``series.json``), 0 = no lasting change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from s2c_batch.kernels.raster.encode import NODATA
from s2c_batch.kernels.raster.series import Against, series_products
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.layout import STORE
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.products.area import is_geographic, planar_pixel_area_m2, row_areas_m2
from s2c_batch.pipeline.run.cog import write_cog
from s2c_batch.pipeline.run.fingerprint import package_version
from s2c_batch.pipeline.series.dates import SeriesDate, SeriesPair

log = logging.getLogger(__name__)

#: The series' Zarr store, under its folder.
SERIES_STORE = "series.zarr"

#: The series products, as arrays of ``series.zarr`` and as COGs ``<name>.tif``.
SERIES_PRODUCTS = ("first_change", "change_count", "persistent_change")

DESCRIPTIONS = {
    "first_change": "date index of the first lasting change (lookup table in the attribute 'dates'); "
                    "0 = no lasting change; 255 = unknown",
    "change_count": "pairs of the series in which the pixel changed; 255 = unknown",
    "persistent_change": "1 = a lasting change was detected, 0 = none (flicker or no change); 255 = unknown",
}


@dataclass(frozen=True)
class SeriesStats:
    """A series' counts, of one block or added over its blocks (areas in m2).

    Attributes:
        first_pixels: int64 ``[N]`` known pixels per ``first_change`` value (0 = no lasting change).
        first_area: float64 ``[N]`` their area in m2.
        flicker_pixels: pixels that changed in some pair and came back: no lasting change, none pending.
        flicker_area: their area.
        pending_pixels: pixels whose change is still open at the last date, too recent to be lasting yet.
        pending_area: their area.
        unknown_pixels: pixels no pair knows.
        unknown_area: their area.
        pair_changed: int64 ``[P]`` changed pixels of each pair.
        pair_changed_area: float64 ``[P]`` their area.
        pair_unknown: int64 ``[P]`` unknown (nodata) pixels of each pair.
        pair_unknown_area: float64 ``[P]`` their area.
    """

    first_pixels: np.ndarray
    first_area: np.ndarray
    flicker_pixels: int
    flicker_area: float
    pending_pixels: int
    pending_area: float
    unknown_pixels: int
    unknown_area: float
    pair_changed: np.ndarray
    pair_changed_area: np.ndarray
    pair_unknown: np.ndarray
    pair_unknown_area: np.ndarray

    def summary(self, dates: Sequence[SeriesDate]) -> dict[str, Any]:
        """What ``series.json`` and the report say: lasting change per first date, flicker, pending, unknown."""
        by_date = [
            {"index": d.index, "datetime": d.to_json()["datetime"], "label": d.label,
             "pixels": int(self.first_pixels[d.index]), "area_m2": round(float(self.first_area[d.index]), 4)}
            for d in dates[1:] if self.first_pixels[d.index]
        ]
        return {
            "lasting_change_pixels": int(self.first_pixels[1:].sum()),
            "lasting_change_m2": round(float(self.first_area[1:].sum()), 4),
            "flicker_pixels": self.flicker_pixels,
            "flicker_m2": round(self.flicker_area, 4),
            "pending_change_pixels": self.pending_pixels,
            "pending_change_m2": round(self.pending_area, 4),
            "unknown_pixels": self.unknown_pixels,
            "unknown_m2": round(self.unknown_area, 4),
            "lasting_change_by_first_date": by_date,
        }


@dataclass(frozen=True)
class SeriesBlockReport(SeriesStats):
    """What a series block task returns (no pixels): its block's counts.

    Attributes:
        index: the block.
    """

    index: tuple[int, int]


#: Bytes of pair masks a series block task holds at once: it reads its block in strips of rows
#: this fits (a series of 254 pairs over a 4096-wide block: strips of 129 rows).
STACK_BYTES = 128 << 20


def strip_rows(n_pairs: int, height: int, width: int, budget: int = STACK_BYTES) -> int:
    """Rows of a block read at once, so that the stack of ``n_pairs`` masks stays within ``budget`` bytes.

    Example:
        >>> strip_rows(5, 4096, 4096), strip_rows(254, 4096, 4096)
        (4096, 129)
    """
    return max(1, min(height, budget // max(1, n_pairs * width)))


def series_block(pair_stores: Sequence[Location], out_store: Location, index: tuple[int, int], window: Window, *,
                 persistence: int, against: Against, n_dates: int, row_areas: np.ndarray) -> SeriesBlockReport:
    """Read one block of every pair's mask, write the block's series products, count (a task).

    The block is read in strips of rows (:func:`strip_rows`), so the task holds at most
    :data:`STACK_BYTES` of masks however long the series; the products of the block (three
    uint8 arrays) are written whole, one shard each.

    Args:
        pair_stores: each pair's ``change.zarr``, in date order.
        out_store: ``series.zarr``.
        index: the block.
        window: the block in grid pixels.
        persistence: ``series.persistence``.
        against: ``series.against``.
        n_dates: dates of the series.
        row_areas: float64 ``[h]`` area in m2 of one pixel of each row of the block.
    """
    h, w, n_pairs = window.height, window.width, len(pair_stores)
    out = {name: np.empty((h, w), np.uint8) for name in SERIES_PRODUCTS}
    first_pixels, first_area = np.zeros(n_dates, np.int64), np.zeros(n_dates, np.float64)
    pair_changed, pair_unknown = np.zeros(n_pairs, np.int64), np.zeros(n_pairs, np.int64)
    pair_changed_area, pair_unknown_area = np.zeros(n_pairs, np.float64), np.zeros(n_pairs, np.float64)
    flicker, pending, unknown = [0, 0.0], [0, 0.0], [0, 0.0]
    step = strip_rows(n_pairs, h, w)
    for r0 in range(0, h, step):
        rows = slice(r0, min(h, r0 + step))
        strip = Window(window.row + r0, window.col, rows.stop - r0, w)
        areas = np.asarray(row_areas, np.float64)[rows]
        masks = np.stack([store.read_window(s, "change_mask", strip) for s in pair_stores])
        products = series_products(masks, persistence=persistence, against=against)
        for name, arr in products.as_dict().items():
            out[name][rows] = arr
        first = products.first_change
        for a in range(0, strip.height, 64):  # pixels of each first_change value per row, 64 rows at a time
            part = first[a : a + 64].astype(np.int64) + 256 * np.arange(min(64, strip.height - a))[:, None]
            per_row = np.bincount(part.ravel(), minlength=256 * len(part)).reshape(len(part), 256)[:, :n_dates]
            first_pixels += per_row.sum(axis=0)
            first_area += (per_row * areas[a : a + 64, None]).sum(axis=0)
        known = first != NODATA
        open_ = products.pending.sum(axis=1)
        pending = [pending[0] + int(open_.sum()), pending[1] + float(open_ @ areas)]
        back = (known & (first == 0) & (products.change_count > 0) & ~products.pending).sum(axis=1)
        flicker = [flicker[0] + int(back.sum()), flicker[1] + float(back @ areas)]
        never = (~known).sum(axis=1)
        unknown = [unknown[0] + int(never.sum()), unknown[1] + float(never @ areas)]
        changed_rows, unknown_rows = (masks == 1).sum(axis=2), (masks == NODATA).sum(axis=2)  # [P, rows]
        pair_changed += changed_rows.sum(axis=1)
        pair_unknown += unknown_rows.sum(axis=1)
        pair_changed_area += changed_rows @ areas
        pair_unknown_area += unknown_rows @ areas
    store.write_block(out_store, window, out)
    return SeriesBlockReport(index=index, first_pixels=first_pixels, first_area=first_area,
                             flicker_pixels=int(flicker[0]), flicker_area=float(flicker[1]),
                             pending_pixels=int(pending[0]), pending_area=float(pending[1]),
                             unknown_pixels=int(unknown[0]), unknown_area=float(unknown[1]),
                             pair_changed=pair_changed, pair_changed_area=pair_changed_area,
                             pair_unknown=pair_unknown, pair_unknown_area=pair_unknown_area)


def add_reports(reports: Sequence[SeriesBlockReport], grid: Grid) -> SeriesStats:
    """Add the block reports in block order; on a projected grid areas are pixels times the pixel's area."""
    parts = sorted(reports, key=lambda r: r.index)

    def total(name: str) -> Any:
        return sum((getattr(r, name) for r in parts[1:]), start=getattr(parts[0], name))

    stats = SeriesStats(*(total(f.name) for f in fields(SeriesStats)))
    if is_geographic(grid):
        return stats
    a = planar_pixel_area_m2(grid)
    return replace(stats, first_area=stats.first_pixels * a, flicker_area=stats.flicker_pixels * a,
                   pending_area=stats.pending_pixels * a, unknown_area=stats.unknown_pixels * a,
                   pair_changed_area=stats.pair_changed * a, pair_unknown_area=stats.pair_unknown * a)


def write_series_products(client: Any, out: Location, grid: Grid, pairs: Sequence[SeriesPair],
                          dates: Sequence[SeriesDate], cfg: Config, *, attrs: dict[str, Any],
                          token: str) -> tuple[dict[str, str], SeriesStats]:
    """Make ``series.zarr`` afresh from the pairs' masks, then its COGs; consolidate it.

    Args:
        client: a ``distributed.Client``.
        out: the series' folder or prefix.
        grid: the common grid (every pair's).
        pairs: the pairs, in date order.
        dates: the dates.
        cfg: the series' config (``series``, ``tiling``, ``output``, ``cluster``).
        attrs: provenance for the store and the COGs' tags.
        token: keeps the task keys of different series apart.

    Returns:
        Product file name -> path or URL, and the series' counts.

    Raises:
        OutputError: the store or a COG cannot be written.
    """
    block, retries = cfg.tiling.block_size, cfg.cluster.retries
    table = [d.to_json() for d in dates]
    target = out.child(SERIES_STORE)
    out.delete_prefix(SERIES_STORE)
    meanings = "no_lasting_change " + " ".join(f"date_{d.label}" for d in dates[1:])
    product_attrs: dict[str, dict[str, Any]] = {
        "first_change": {"long_name": DESCRIPTIONS["first_change"], "flag_values": [d.index for d in dates],
                         "flag_meanings": meanings, "dates": table},
        "change_count": {"long_name": DESCRIPTIONS["change_count"], "units": "1"},
        "persistent_change": {"long_name": DESCRIPTIONS["persistent_change"], "flag_values": [0, 1],
                              "flag_meanings": "no_lasting_change lasting_change"},
    }
    store.create_store(target, grid, SERIES_PRODUCTS, shard=block, chunk=cfg.tiling.chunk_size,
                       attrs={**attrs, "dates": table, "persistence": cfg.series.persistence,
                              "against": cfg.series.against}, product_attrs=product_attrs)
    pair_stores = [out.child(f"{p.key}/{STORE}") for p in pairs]
    geodesic = is_geographic(grid)
    flat = 0.0 if geodesic else planar_pixel_area_m2(grid)
    futures = []
    for bi, r in enumerate(range(0, grid.height, block)):
        for bj, c in enumerate(range(0, grid.width, block)):
            win = Window(r, c, min(block, grid.height - r), min(block, grid.width - c))
            rows = row_areas_m2(grid, np.arange(r, r + win.height)) if geodesic else np.full(win.height, flat)
            futures.append(client.submit(
                series_block, pair_stores, target, (bi, bj), win, persistence=cfg.series.persistence,
                against=cfg.series.against, n_dates=len(dates), row_areas=rows,
                key=f"s2c-series-{token}-{bi}-{bj}", retries=retries))
    stats = add_reports(client.gather(futures), grid)
    written: dict[str, str] = {}
    if cfg.output.cog:
        tags = {"S2C_BATCH_VERSION": package_version(), "S2C_SERIES_DATES": json.dumps(table),
                "S2C_SERIES_PERSISTENCE": str(cfg.series.persistence), "S2C_SERIES_AGAINST": cfg.series.against,
                "S2C_CONFIG_HASH": cfg.hash()}
        cogs = {name: client.submit(write_cog, target, name, out, grid, window=block, compress=cfg.output.compress,
                                    compress_level=cfg.output.compress_level,
                                    overview_resampling=cfg.output.overview_resampling,
                                    tags={**tags, "S2C_PRODUCT": DESCRIPTIONS[name]}, pure=False, retries=retries)
                for name in SERIES_PRODUCTS}
        written = {f"{name}.tif": str(fut.result()) for name, fut in cogs.items()}
    store.consolidate(target)
    written[SERIES_STORE] = str(out.href(SERIES_STORE))
    log.info("series products of %d dates -> %s", len(dates), out.url)
    return written, stats
