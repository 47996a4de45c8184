"""Validate STAC Items with pystac, offline.

pystac's default validator fetches every schema over the network. It ships the
STAC core (Item, GeoJSON) schemas and looks them up locally first, but not the
extension schemas. :func:`offline_validator` returns pystac's own
``JsonSchemaSTACValidator`` with the projection extension schema added to its
cache, so ``item.validate(validator=offline_validator())`` checks the core
Item schema and the ``proj:`` fields without any network access. Any other
extension an item declares is refused up front (it could only be checked online).

:data:`PROJECTION_SCHEMA` is written here from the field definitions of the
projection extension v2.0.0 (types, lengths and ranges of ``proj:code``,
``proj:wkt2``, ``proj:projjson``, ``proj:geometry``, ``proj:bbox``,
``proj:centroid``, ``proj:shape``, ``proj:transform``), for Item properties and
assets alike.
"""

from __future__ import annotations

import copy
from typing import Any

import pystac
from pystac.extensions.projection import SCHEMA_URI as PROJECTION_URI
from pystac.validation import JsonSchemaSTACValidator

from s2c_batch.pipeline.errors import OutputError

_NUMBER = {"type": "number"}

_PROJ_FIELDS: dict[str, Any] = {
    "proj:code": {"type": ["string", "null"]},
    "proj:wkt2": {"type": ["string", "null"], "minLength": 1},
    "proj:projjson": {"type": ["object", "null"]},
    "proj:geometry": {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"type": "string"}, "coordinates": {"type": "array"}},
    },
    "proj:bbox": {"type": "array", "items": _NUMBER, "oneOf": [
        {"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}]},
    "proj:centroid": {
        "type": "object",
        "required": ["lat", "lon"],
        "properties": {
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "lon": {"type": "number", "minimum": -180, "maximum": 180},
        },
    },
    "proj:shape": {"type": "array", "minItems": 2, "maxItems": 2,
                   "items": {"type": "integer", "minimum": 0}},
    "proj:transform": {"type": "array", "items": _NUMBER, "oneOf": [
        {"minItems": 6, "maxItems": 6}, {"minItems": 9, "maxItems": 9}]},
}

#: JSON Schema (draft 7) of the projection extension fields on an Item.
PROJECTION_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": PROJECTION_URI,
    "title": "Projection extension fields (offline copy written for s2c-batch)",
    "type": "object",
    "required": ["stac_extensions", "properties"],
    "properties": {
        "stac_extensions": {"type": "array", "contains": {"const": PROJECTION_URI}},
        "properties": {"$ref": "#/definitions/fields"},
        "assets": {"type": "object", "additionalProperties": {"$ref": "#/definitions/fields"}},
    },
    "definitions": {
        "fields": {"type": "object", "properties": _PROJ_FIELDS},
    },
}


def offline_validator() -> JsonSchemaSTACValidator:
    """Pystac's JSON-schema validator with every schema our Items use available offline."""
    validator = JsonSchemaSTACValidator()
    validator.schema_cache[PROJECTION_URI] = copy.deepcopy(PROJECTION_SCHEMA)
    return validator


def validate_item(item: pystac.Item) -> list[str]:
    """Validate an Item against the STAC core and projection schemas, offline.

    Returns:
        The schema URIs validated against.

    Raises:
        OutputError: the item declares an extension without a local schema, or
            fails validation (the message holds jsonschema's best error).
    """
    unknown = [e for e in item.stac_extensions if e != PROJECTION_URI]
    if unknown:
        raise OutputError(
            f"STAC item {item.id!r} declares extensions {unknown} that cannot be validated offline; "
            f"only {PROJECTION_URI} has a local schema"
        )
    try:
        return [str(u) for u in item.validate(validator=offline_validator())]
    except pystac.errors.STACValidationError as exc:
        raise OutputError(f"STAC item {item.id!r} is not valid: {exc}") from exc
