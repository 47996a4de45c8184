"""Acquisition date and time of an input scene, from its GeoTIFF/GDAL metadata.

Keys looked up, in order, in the default and ``IMAGERY`` metadata domains:
``ACQUISITIONDATETIME`` (GDAL's imagery metadata), ``ACQUISITION_DATETIME``,
``DATETIME``, ``SENSING_TIME``, ``DATE_ACQUIRED`` and ``TIFFTAG_DATETIME`` (the
TIFF ``DateTime`` tag, ``YYYY:MM:DD HH:MM:SS``). Keys match case-insensitively.
A value without a time zone is taken as UTC. ``TIFFTAG_DATETIME`` is last because
many tools stamp it with the file's creation time rather than the acquisition.
A STAC Item states its own time (:func:`source_datetime`).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

import rasterio

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.inputs.remote import open_raster
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.inputs.stac_item import item_datetime_text

log = logging.getLogger(__name__)

#: Metadata keys holding an acquisition time, most specific first.
DATETIME_KEYS = (
    "ACQUISITIONDATETIME",
    "ACQUISITION_DATETIME",
    "DATETIME",
    "SENSING_TIME",
    "DATE_ACQUIRED",
    "TIFFTAG_DATETIME",
)

_FORMATS = ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y:%m:%d", "%Y%m%dT%H%M%S")


def parse_datetime(text: str) -> datetime | None:
    """Parse a metadata date/time to an aware UTC datetime; ``None`` when unreadable.

    Example:
        >>> parse_datetime("2024:06:01 10:30:00").isoformat()
        '2024-06-01T10:30:00+00:00'
        >>> parse_datetime("2024-06-01T12:30:00+02:00").isoformat()
        '2024-06-01T10:30:00+00:00'
        >>> parse_datetime("yesterday") is None
        True
    """
    value = text.strip().rstrip("\x00").strip()
    if not value:
        return None
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def acquisition_datetime(path: str | os.PathLike[str], storage: StorageConfig | None = None) -> datetime | None:
    """The acquisition time a raster (a path or a URL read with ``storage``) carries in its metadata, or ``None``."""
    try:
        with open_raster(path, storage) as src:
            tags = {k.upper(): v for k, v in src.tags().items()}
            try:
                tags.update({k.upper(): v for k, v in src.tags(ns="IMAGERY").items()})
            except Exception:  # pragma: no cover - domain absent in some drivers
                pass
    except rasterio.errors.RasterioError as exc:
        log.warning("cannot read the metadata of %s: %s", path, exc)
        return None
    for key in DATETIME_KEYS:
        if key in tags:
            parsed = parse_datetime(tags[key])
            if parsed is not None:
                return parsed
            log.warning("%s: metadata %s=%r is not a date/time; ignored", path, key, tags[key])
    return None


def source_datetime(source: Source, storage: StorageConfig | None = None, *, label: str = "scene") -> datetime | None:
    """The acquisition time of an input: a STAC Item's ``datetime`` (or ``start_datetime``), else the raster's metadata.

    Raises:
        InputError: a STAC Item cannot be read.
    """
    if source.is_stac_item:
        text = item_datetime_text(source, label, storage=storage)
        return parse_datetime(text) if text else None
    return acquisition_datetime(source.text, storage)


def to_rfc3339(value: datetime) -> str:
    """UTC RFC 3339 text with a ``Z`` suffix, as STAC wants it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
