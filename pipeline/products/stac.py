"""``stac-item.json``: a STAC Item describing one run's products, built with pystac.

- Time: when both inputs carry an acquisition time (see
  :mod:`s2c_batch.pipeline.inputs.acquisition`), ``datetime`` is null and
  ``start_datetime`` / ``end_datetime`` are t1's and t2's (earliest first).
  Otherwise STAC still needs a time, so ``datetime`` is the processing time and
  there is no start/end; ``s2c:datetime_source`` says which case applies
  (``inputs`` or ``processing``) and ``s2c:t1_datetime`` / ``s2c:t2_datetime``
  hold what was found (null when nothing).
- Space: ``geometry`` is the output grid's footprint (edges densified, so a
  projected rectangle stays faithful in WGS84) and ``bbox`` its bounds, in
  WGS84 longitude/latitude. The projection extension gives the native grid:
  ``proj:code`` (``EPSG:n``, or null with ``proj:wkt2`` for CRSs without an EPSG
  code), ``proj:shape`` ``[rows, cols]``, ``proj:transform`` (the six GDAL-order
  affine coefficients) and ``proj:bbox``.
- Assets: every COG, the Zarr store, and the derived ``quicklook.png``,
  ``changes.parquet`` and ``run.json`` when present, with relative hrefs so the
  folder can be moved or uploaded as a whole.
- Provenance in ``properties``: ``s2c:version``, ``s2c:config_hash``,
  ``s2c:fingerprint``, ``s2c:checkpoints``, ``s2c:inputs`` (file names),
  ``s2c:comparator``, ``s2c:identifier``, ``s2c:threshold`` (the number, or Otsu's choice
  ``{"method": "otsu", "level", "value", "valid_pixels"}``), ``s2c:fit`` (a fitted
  comparator's parameters, else null); with class maps ``s2c:transitions`` (the from/to
  matrix in m2) and ``s2c:summary`` (:mod:`~s2c_batch.pipeline.products.transitions`), and
  with ``output.min_area_m2`` ``s2c:min_area`` (the regions it dropped).
- What was seen: ``s2c:observed_area_m2`` and ``s2c:unknown_area_m2`` (m2) and
  ``s2c:observed_pct`` / ``s2c:unknown_pct`` (% of the grid's ground area): a pixel is
  unknown when at least one date did not observe it. ``s2c:coregistration``: the shift QA
  of ``run.json`` (per-block shifts, the median in pixels and metres, its spread, the
  blocks above ``input.max_shift_px``, the shift applied).

The item is validated offline (:mod:`s2c_batch.pipeline.products.stac_schema`) before it is
written; an invalid item is an output error, never a silent file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.projection import ProjectionExtension
from rasterio.warp import transform_geom

from s2c_batch.pipeline.inputs.acquisition import acquisition_datetime, to_rfc3339
from s2c_batch.pipeline.inputs.scene import Grid, ScenePair
from s2c_batch.pipeline.output.layout import STAC_FILE
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.store import PRODUCT_DESCRIPTIONS
from s2c_batch.pipeline.products.stac_schema import validate_item

#: Points per footprint edge before reprojection to WGS84.
_DENSIFY = 16

#: Asset keys, media types, roles and titles of the derived files.
_DERIVED: dict[str, tuple[str, str, list[str], str]] = {
    "quicklook.png": ("quicklook", pystac.MediaType.PNG, ["overview"], "t1 | t2 | change overlay"),
    "changes.parquet": ("changes", pystac.MediaType.VND_APACHE_PARQUET, ["data"],
                        "change polygons (GeoParquet): from/to class, area, mean probability"),
    "run.json": ("run", pystac.MediaType.JSON, ["metadata"], "run record: config, inputs, timings"),
}


def footprint(grid: Grid) -> dict[str, Any]:
    """The grid's outline as a GeoJSON Polygon in its own CRS, ``_DENSIFY`` points per edge."""
    a, b, c, d, e, f = grid.transform
    h, w = grid.height, grid.width
    ring: list[tuple[float, float]] = []
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    for k in range(4):
        (x0, y0), (x1, y1) = corners[k], corners[(k + 1) % 4]
        for i in range(_DENSIFY):
            col, row = x0 + (x1 - x0) * i / _DENSIFY, y0 + (y1 - y0) * i / _DENSIFY
            ring.append((c + a * col + b * row, f + d * col + e * row))
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def wgs84_footprint(grid: Grid) -> tuple[dict[str, Any], list[float]]:
    """Footprint geometry and ``[west, south, east, north]`` bbox in WGS84."""
    geom = transform_geom(grid.crs, "EPSG:4326", footprint(grid))
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return dict(geom), [min(xs), min(ys), max(xs), max(ys)]


def native_bbox(grid: Grid) -> list[float]:
    """``[minx, miny, maxx, maxy]`` of the grid in its CRS."""
    ring = footprint(grid)["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return [min(xs), min(ys), max(xs), max(ys)]


def build_item(
    out_dir: str | os.PathLike[str] | Location,
    pair: ScenePair,
    run: Mapping[str, Any],
    products: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> pystac.Item:
    """Build the STAC Item of a run.

    Args:
        out_dir: the run's folder or object-store prefix (its last part is the item id).
        pair: the scene pair and output grid.
        run: the run record (``run.json`` content: version, fingerprint, config...).
        products: product file name -> path of what the run wrote.
        now: processing time (default: the current UTC time).

    Returns:
        The item (not yet validated or written).
    """
    out = as_location(out_dir)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    t1 = acquisition_datetime(pair.t1.path, pair.t1.storage)
    t2 = acquisition_datetime(pair.t2.path, pair.t2.storage)
    geometry, bbox = wgs84_footprint(pair.grid)
    both = t1 is not None and t2 is not None
    config = run.get("config") or {}
    model = config.get("model", {}) if isinstance(config, dict) else {}
    properties: dict[str, Any] = {
        "created": to_rfc3339(now),
        "s2c:datetime_source": "inputs" if both else "processing",
        "s2c:t1_datetime": to_rfc3339(t1) if t1 else None,
        "s2c:t2_datetime": to_rfc3339(t2) if t2 else None,
        "s2c:version": run.get("version"),
        "s2c:config_hash": run.get("config_hash"),
        "s2c:fingerprint": run.get("fingerprint"),
        "s2c:checkpoints": dict(run.get("checkpoints") or {}),
        "s2c:inputs": [pair.t1.raster.name, pair.t2.raster.name],
        "s2c:comparator": model.get("comparator"),
        "s2c:identifier": model.get("identifier"),
        "s2c:threshold": run.get("threshold", model.get("threshold")),
        "s2c:fit": run.get("fit"),
    }
    coverage = run.get("coverage")
    if isinstance(coverage, Mapping):  # observed (both dates) and unknown (at least one did not observe)
        for key in ("observed_area_m2", "unknown_area_m2", "observed_pct", "unknown_pct"):
            properties[f"s2c:{key}"] = coverage.get(key)
    if run.get("coregistration") is not None:
        properties["s2c:coregistration"] = run["coregistration"]
    for key in ("transitions", "summary", "min_area"):  # only where the run has them
        if run.get(key) is not None:
            properties[f"s2c:{key}"] = run[key]
    if both:
        start, end = sorted([t1, t2])  # type: ignore[type-var]
        item = pystac.Item(item_id(out), geometry, bbox, None, properties,
                           start_datetime=start, end_datetime=end)
    else:
        item = pystac.Item(item_id(out), geometry, bbox, now, properties)
    crs = pair.grid.crs
    epsg = crs.to_epsg()
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.apply(code=f"EPSG:{epsg}" if epsg else None, wkt2=None if epsg else crs.to_wkt(),
               shape=[pair.grid.height, pair.grid.width], transform=list(pair.grid.transform),
               bbox=native_bbox(pair.grid))
    for name in sorted(products):
        stem = Path(name).stem
        if name.endswith(".tif"):
            item.add_asset(stem, pystac.Asset(
                f"./{name}", media_type=pystac.MediaType.COG, roles=["data"], title=stem,
                description=PRODUCT_DESCRIPTIONS.get(stem)))
        elif name.endswith(".zarr"):
            item.add_asset("zarr", pystac.Asset(
                f"./{name}", media_type=pystac.MediaType.ZARR, roles=["data"], title="Zarr v3 store",
                description="every product as a georeferenced Zarr v3 group (CF spatial_ref)"))
    for name, (key, media, roles, title) in _DERIVED.items():
        if name in products or out.exists(name):
            item.add_asset(key, pystac.Asset(f"./{name}", media_type=media, roles=roles, title=title))
    return item


def item_id(out: Location) -> str:
    """A run's item id: its folder's name, or the last part of its object-store prefix (else the bucket)."""
    return out.name


def write_stac_item(
    out_dir: str | os.PathLike[str] | Location,
    pair: ScenePair,
    run: Mapping[str, Any],
    products: Mapping[str, str],
) -> Path | str:
    """Build, validate (offline) and atomically write ``stac-item.json``.

    Its asset hrefs are relative (``./change_prob.tif``), so the item stays valid when
    the folder or prefix is copied elsewhere.

    Returns:
        The item's path, or its URL on object storage.

    Raises:
        OutputError: the item is invalid or cannot be written.
    """
    out = as_location(out_dir)
    item = build_item(out, pair, run, products)
    validate_item(item)
    with out.staged(STAC_FILE, what="STAC item") as tmp:
        tmp.write_text(json.dumps(item.to_dict(include_self_link=False), indent=2))
    return out.href(STAC_FILE)
