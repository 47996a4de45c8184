"""``changes.parquet``: one polygon per connected changed region, never cut at a block seam.

How it works, and why no polygon is cut at a seam:

1. One Dask task per output block (:func:`vectorise_block`) reads the block's
   window of ``change_mask`` (and ``change_prob``, the class maps) from the
   Zarr store, labels its 4-connected changed regions
   (:func:`s2c_batch.kernels.raster.regions.label_regions`), traces one polygon per
   label with GDAL (``rasterio.features.shapes``, 4-connectivity) in *pixel*
   coordinates of the whole grid, sums each label's attributes, and returns the
   labels on its four edges.
2. The driver matches edges across every seam: a label on the last row of a
   block and a label on the first row of the block below (same for columns) that
   share a pixel edge belong to one region
   (:func:`~s2c_batch.kernels.raster.regions.seam_pairs`); union-find groups all pieces
   of a region, however many blocks it spans.
3. The pieces of each group are dissolved with ``shapely.union_all``. Pixel
   coordinates are integers, so both sides of a seam carry bit-identical
   vertices and the union leaves no seam line; the polygon is then mapped to
   the CRS with the grid's affine transform. Attributes are summed exactly
   (pixel-weighted mean probability, class modes over all pixels).

Memory: a task holds one block; the driver holds the polygons (vectors), not
pixels. Columns: ``id``, ``pixels``, ``area_m2`` (planar or geodesic, see
:mod:`s2c_batch.pipeline.products.area`), ``mean_prob`` and, with class maps,
``from_class``/``to_class`` (names) and ``from_class_id``/``to_class_id``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import shapely
import shapely.affinity
import shapely.geometry
from affine import Affine

from s2c_batch.kernels.raster.regions import (
    RegionStats,
    concat_stats,
    group_ids,
    label_regions,
    merge_stats,
    region_stats,
    seam_pairs,
)
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.output.store import StorePath
from s2c_batch.pipeline.products.area import is_geographic, planar_pixel_area_m2

log = logging.getLogger(__name__)


#: Parquet file-metadata key holding the run's provenance (JSON).
PROVENANCE_KEY = "s2c:provenance"


@dataclass(frozen=True)
class BlockPolygons:
    """What one block task returns (small: vectors and edge labels, no pixel block).

    Attributes:
        index: (block row, block col).
        window: the block in grid pixel coordinates.
        geoms: WKB polygon of each label ``1..n``, in grid pixel coordinates.
        stats: attributes of the labels.
        top: int32 ``[w]`` labels of the first row; ``bottom``, ``left``, ``right`` likewise.
    """

    index: tuple[int, int]
    window: Window
    geoms: tuple[bytes, ...]
    stats: RegionStats
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray


def vectorise_block(store_path: StorePath, index: tuple[int, int], window: Window, *, with_classes: bool,
                    n_classes: int) -> BlockPolygons:
    """Label, measure and trace the changed regions of one block (runs on a worker)."""
    mask = store.read_window(store_path, "change_mask", window)
    labels, n = label_regions(mask)
    prob = store.read_window(store_path, "change_prob", window) if n else mask
    c1 = c2 = None
    if with_classes and n:
        c1 = store.read_window(store_path, "class_t1", window)
        c2 = store.read_window(store_path, "class_t2", window)
    stats = region_stats(labels, n, prob, c1, c2, n_classes=n_classes)
    if with_classes and not n:
        stats = RegionStats(stats.pixels, stats.prob_sum, np.zeros((0, n_classes), np.int64),
                            np.zeros((0, n_classes), np.int64))
    geoms: list[bytes | None] = [None] * n
    if n:
        shift = Affine.translation(window.col, window.row)
        for geom, value in rasterio.features.shapes(labels, mask=labels > 0, connectivity=4,
                                                    transform=shift):
            geoms[int(value) - 1] = shapely.to_wkb(shapely.geometry.shape(geom))
    if any(g is None for g in geoms):  # pragma: no cover - GDAL traces every label
        raise OutputError(f"block {index}: a changed region could not be traced")
    return BlockPolygons(index, window, tuple(geoms), stats,  # type: ignore[arg-type]
                         labels[0].copy(), labels[-1].copy(), labels[:, 0].copy(), labels[:, -1].copy())


def merge_blocks(parts: Sequence[BlockPolygons]) -> tuple[list[Any], RegionStats]:
    """Dissolve the pieces of every region across block seams.

    Args:
        parts: every block's result (any order).

    Returns:
        ``(geoms, stats)``: one shapely polygon per region in grid pixel
        coordinates, sorted by position (top to bottom, left to right), and their
        merged attributes.
    """
    parts = sorted(parts, key=lambda p: p.index)
    offsets: dict[tuple[int, int], int] = {}
    total = 0
    for p in parts:
        offsets[p.index] = total
        total += len(p.geoms)
    by_index = {p.index: p for p in parts}
    links = []
    for p in parts:
        i, j = p.index
        for other, mine, theirs in (((i, j + 1), p.right, "left"), ((i + 1, j), p.bottom, "top")):
            q = by_index.get(other)
            if q is None:
                continue
            pairs = seam_pairs(mine, getattr(q, theirs))
            if len(pairs):
                links.append(np.stack([pairs[:, 0] - 1 + offsets[p.index],
                                       pairs[:, 1] - 1 + offsets[q.index]], axis=1))
    pairs_all = np.concatenate(links) if links else np.zeros((0, 2), np.int64)
    groups = group_ids(total, pairs_all)
    stats = merge_stats(concat_stats([p.stats for p in parts]), groups)
    pieces: list[list[bytes]] = [[] for _ in range(len(stats))]
    for p in parts:
        for k, wkb in enumerate(p.geoms):
            pieces[groups[offsets[p.index] + k]].append(wkb)
    geoms = [
        # simplify(0) drops the collinear vertices left where the seams were.
        shapely.from_wkb(ws[0]) if len(ws) == 1 else shapely.simplify(shapely.union_all(shapely.from_wkb(ws)), 0)
        for ws in pieces
    ]
    order = sorted(range(len(geoms)), key=lambda g: (geoms[g].bounds[1], geoms[g].bounds[0]))
    sel = np.asarray(order, dtype=np.int64)
    return [geoms[g] for g in order], RegionStats(
        stats.pixels[sel], stats.prob_sum[sel],
        None if stats.hist_t1 is None else stats.hist_t1[sel],
        None if stats.hist_t2 is None else stats.hist_t2[sel],
    )


def to_crs_coords(geoms: Sequence[Any], grid: Grid) -> list[Any]:
    """Map polygons from grid pixel coordinates (col, row) to the grid's CRS."""
    a, b, c, d, e, f = grid.transform
    return [shapely.affinity.affine_transform(g, [a, b, d, e, c, f]) for g in geoms]


def polygon_areas_m2(geoms_crs: Sequence[Any], pixels: np.ndarray, grid: Grid) -> np.ndarray:
    """Area of each region in m2: pixels times pixel area (projected) or geodesic (geographic)."""
    if not is_geographic(grid):
        return pixels.astype(np.float64) * planar_pixel_area_m2(grid)
    from pyproj import CRS as ProjCRS

    geod = ProjCRS.from_wkt(grid.crs_wkt).get_geod()
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in geoms_crs],  # type: ignore[union-attr]
                    dtype=np.float64)


def vectorise_after(written: Any, store_path: StorePath, index: tuple[int, int], window: Window, *,
                    with_classes: bool, n_classes: int) -> BlockPolygons:
    """:func:`vectorise_block` once ``written`` (the block's write task) has finished."""
    return vectorise_block(store_path, index, window, with_classes=with_classes, n_classes=n_classes)


#: Dask priority of the polygon tasks: below the block tasks (0), so a worker traces a
#: written block only when no block is waiting to be predicted.
POLYGON_PRIORITY = -10


def submit_vectorise(
    client: Any,
    store_path: StorePath,
    grid: Grid,
    *,
    block: int,
    class_names: Sequence[str] | None = None,
    retries: int = 0,
    after: Mapping[tuple[int, int], Any] | None = None,
) -> list[Any]:
    """Submit one :func:`vectorise_block` task per block of ``block`` pixels.

    Args:
        client: a ``distributed.Client``.
        store_path: the run's ``change.zarr``.
        grid: the output grid.
        block: block side (the run's ``tiling.block_size``: one task per shard).
        class_names: vocabulary class names when the store has class maps.
        retries: task retries.
        after: block index -> the future of the task that writes that block. A
            block's polygons are traced as soon as it is written, while the
            blocks after it are still being predicted. Blocks not named here
            must already be in the store.

    Returns:
        The futures of :class:`BlockPolygons`, for :func:`write_polygons`.
    """
    with_classes = class_names is not None
    k = len(class_names) if class_names is not None else 0
    after = after or {}
    target = as_location(store_path)
    futures = []
    for bi, r in enumerate(range(0, grid.height, block)):
        for bj, c in enumerate(range(0, grid.width, block)):
            win = Window(r, c, min(block, grid.height - r), min(block, grid.width - c))
            futures.append(client.submit(vectorise_after, after.get((bi, bj)), target, (bi, bj), win,
                                         with_classes=with_classes, n_classes=max(k, 1),
                                         pure=False, retries=retries, priority=POLYGON_PRIORITY))
    return futures


def polygon_frame(
    client: Any,
    store_path: StorePath,
    grid: Grid,
    *,
    block: int,
    class_names: Sequence[str] | None = None,
    retries: int = 0,
    futures: Sequence[Any] | None = None,
) -> Any:
    """Vectorise the store's change mask block by block into one table of change polygons.

    Args:
        client: a ``distributed.Client``; one task per block.
        store_path: the run's ``change.zarr`` (a folder, or an object-store location).
        grid: the output grid.
        block: block side (the run's ``tiling.block_size``: one task per shard).
        class_names: vocabulary class names when the store has class maps.
        retries: task retries.
        futures: the block tasks, already submitted by :func:`submit_vectorise`
            (``None`` = submit them now).

    Returns:
        A ``geopandas.GeoDataFrame`` in the grid's CRS: ``id``, ``pixels``, ``area_m2``,
        ``mean_prob`` and, with classes, ``from_class``/``to_class`` (names and ids).
    """
    import geopandas as gpd

    if futures is None:
        futures = submit_vectorise(client, store_path, grid, block=block, class_names=class_names,
                                   retries=retries)
    geoms_px, stats = merge_blocks(client.gather(futures))
    geoms = to_crs_coords(geoms_px, grid)
    columns: dict[str, Any] = {
        "id": np.arange(1, len(geoms) + 1, dtype=np.int64),
        "pixels": stats.pixels,
        "area_m2": polygon_areas_m2(geoms, stats.pixels, grid),
        "mean_prob": stats.mean_prob.astype(np.float32),
    }
    cls = stats.classes()
    if cls is not None and class_names is not None:
        names = np.asarray(list(class_names), dtype=object)
        columns.update(from_class=names[cls[0]] if len(geoms) else np.zeros(0, object),
                       to_class=names[cls[1]] if len(geoms) else np.zeros(0, object),
                       from_class_id=cls[0].astype(np.int16), to_class_id=cls[1].astype(np.int16))
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(geoms, crs=grid.crs_wkt))


def save_polygons(frame: Any, path: Path, provenance: Mapping[str, Any] | None = None) -> None:
    """Write ``frame`` as GeoParquet to ``path`` (not atomic: give it a temporary name).

    Args:
        frame: what :func:`polygon_frame` built.
        path: the file to write.
        provenance: stored as JSON under the ``s2c:provenance`` key of the
            Parquet file's metadata (version, config hash, fingerprint, inputs).
    """
    frame.to_parquet(path, index=False)
    if provenance:
        _add_metadata(path, {PROVENANCE_KEY: json.dumps(dict(provenance), sort_keys=True)})


def write_polygons(
    client: Any,
    store_path: StorePath,
    out_path: str | os.PathLike[str],
    grid: Grid,
    *,
    block: int,
    class_names: Sequence[str] | None = None,
    retries: int = 0,
    provenance: Mapping[str, Any] | None = None,
    futures: Sequence[Any] | None = None,
) -> Path:
    """Vectorise the store's change mask and write GeoParquet to a local file, atomically.

    Args:
        client: a ``distributed.Client``; one task per block.
        store_path: the run's ``change.zarr``.
        out_path: the ``changes.parquet`` to write (temporary + rename).
        grid: the output grid.
        block: block side (the run's ``tiling.block_size``: one task per shard).
        class_names: vocabulary class names when the store has class maps.
        retries: task retries.
        provenance: see :func:`save_polygons`.
        futures: see :func:`polygon_frame`.

    Returns:
        The written path.

    Raises:
        OutputError: the file cannot be written.
    """
    frame = polygon_frame(client, store_path, grid, block=block, class_names=class_names, retries=retries,
                          futures=futures)
    out = Path(out_path)
    with atomic_path(out, what="change polygons") as tmp:
        save_polygons(frame, tmp, provenance)
    log.info("%d change polygons -> %s", len(frame), out)
    return out


def _add_metadata(path: Path, extra: Mapping[str, str]) -> None:
    """Add key-value pairs to a Parquet file's schema metadata (keeps GeoParquet's ``geo`` key)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    meta.update({k.encode(): v.encode() for k, v in extra.items()})
    pq.write_table(table.replace_schema_metadata(meta), path)
