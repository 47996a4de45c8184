"""``collection.json``: the series as a STAC Collection, holding one item per pair.

Each pair's run writes its own ``stac-item.json`` (:mod:`~s2c_batch.pipeline.products.stac`);
the collection links each of them (``rel: item``, relative hrefs into ``pairs/``), spans
the series' footprint and its first to last date, and lists the series products (the
COGs, ``series.zarr``, ``series.json`` and the night's report) as its assets. Its
``s2c:dates`` property is the lookup table of ``first_change``. Validated offline
against the STAC core schema pystac ships before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pystac

from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output.layout import STAC_FILE
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.products.stac import wgs84_footprint
from s2c_batch.pipeline.products.stac_schema import offline_validator
from s2c_batch.pipeline.series.dates import SeriesDate, SeriesPair

#: The collection's file under the series folder.
COLLECTION_FILE = "collection.json"


def build_collection(out: Location, name: str, grid: Grid, dates: Sequence[SeriesDate],
                     pairs: Sequence[SeriesPair], products: Mapping[str, str], *,
                     properties: Mapping[str, Any]) -> pystac.Collection:
    """The series' collection (not yet validated or written).

    Args:
        out: the series folder or prefix.
        name: the collection id.
        grid: the common grid.
        dates: the dates (their times give the temporal extent; without times, now).
        pairs: the pairs whose items it links.
        products: the series products written (file name -> path).
        properties: extra fields (``s2c:*``) of the collection.
    """
    _, bbox = wgs84_footprint(grid)
    times = [d.time for d in dates if d.time is not None]
    start, end = (min(times), max(times)) if times else (datetime.now(UTC), datetime.now(UTC))
    collection = pystac.Collection(
        id=name,
        description=f"s2c-batch series of {len(dates)} dates ({len(pairs)} pairs): the pairs' change products "
                    "and the series products first_change, change_count and persistent_change",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])),
        license="other",
        extra_fields=dict(properties),
    )
    for pair in pairs:
        if out.exists(f"{pair.key}/{STAC_FILE}"):
            collection.add_link(pystac.Link("item", f"./{pair.key}/{STAC_FILE}", media_type=pystac.MediaType.GEOJSON,
                                            title=pair.name))
    for key in sorted(products):
        media = pystac.MediaType.COG if key.endswith(".tif") else (
            pystac.MediaType.ZARR if key.endswith(".zarr") else pystac.MediaType.JSON)
        collection.add_asset(key.rsplit(".", 1)[0], pystac.Asset(f"./{key}", media_type=media, roles=["data"],
                                                                 title=key))
    return collection


def write_collection(out: Location, name: str, grid: Grid, dates: Sequence[SeriesDate], pairs: Sequence[SeriesPair],
                     products: Mapping[str, str], *, properties: Mapping[str, Any]) -> str:
    """Build, validate (offline) and write ``collection.json``.

    Returns:
        Its path or URL.

    Raises:
        OutputError: it is invalid or cannot be written.
    """
    collection = build_collection(out, name, grid, dates, pairs, products, properties=properties)
    doc = collection.to_dict(include_self_link=False, transform_hrefs=False)
    try:
        offline_validator().validate_core(doc, pystac.STACObjectType.COLLECTION, pystac.get_stac_version())
    except pystac.errors.STACValidationError as exc:
        raise OutputError(f"the series collection {name!r} is not valid STAC: {exc}") from exc
    with out.staged(COLLECTION_FILE, what="STAC collection") as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    return str(out.href(COLLECTION_FILE))
