"""A STAC Item as a scene: the GeoTIFF/COG asset it lists, read in place.

A T1 or T2 whose name ends in ``.json`` (a local file, an ``http(s)://`` or ``s3://``
URL) is read as a STAC Item. ``input.asset`` names the asset to read; unset, the first
GeoTIFF/COG asset (media type ``image/tiff``) that has the bands ``input.bands`` asks for
(``eo:bands`` or ``raster:bands``, when the item says) is taken. A relative ``href`` is
resolved against the item's own location. The scene is then the asset's URL or path:
it is what the workers read and what the fingerprint identifies. A mask
(``input.mask_t1`` / ``input.mask_t2``) may name another asset of the same item
(:func:`asset_named`).
"""

from __future__ import annotations

import json
import os
import posixpath
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urljoin, urlsplit

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.source import Source

#: Seconds a download of an item may take.
FETCH_TIMEOUT_S = 30.0


def is_stac_item(path: str | os.PathLike[str] | Source) -> bool:
    """Whether an input names a STAC Item (its path, without a query, ends in ``.json``)."""
    return Source.parse(path).is_stac_item


def resolve_item(item: Source, label: str, *, asset: str | None, bands: tuple[int, ...],
                 storage: StorageConfig | None) -> Source:
    """The raster a STAC Item input stands for: its chosen asset's absolute URL or path.

    Args:
        item: the item (a local JSON file or a URL).
        label: ``t1`` or ``t2``, for messages.
        asset: the asset key to read (``input.asset``), or ``None`` for the first fitting one.
        bands: the 1-based bands the run reads (``input.bands``).
        storage: how an ``s3://`` item is reached.

    Raises:
        InputError: the item cannot be read or is no STAC Item, the asset named is absent,
            or no asset fits; the message lists the item's assets.
    """
    path = item.redacted
    doc = _load(item, label, storage)
    assets = doc.get("assets")
    if doc.get("type") != "Feature" or not isinstance(assets, dict) or not assets:
        raise InputError(f"{label} {path!r} is not a STAC Item with assets (its \"type\" must be "
                         "\"Feature\" and it must hold \"assets\"); give an Item, or the raster itself")
    listing = ", ".join(f"{k} ({v.get('type', 'no type')})" for k, v in assets.items() if isinstance(v, dict))
    if asset is not None:
        if asset not in assets:
            raise InputError(f"{label} STAC Item {path!r} has no asset {asset!r}; its assets are "
                             f"{listing}; set input.asset to one of them")
        chosen = assets[asset]
    else:
        fitting = [a for a in assets.values() if isinstance(a, dict) and _is_geotiff(a) and _has_bands(a, bands)]
        if not fitting:
            raise InputError(f"{label} STAC Item {path!r} has no GeoTIFF/COG asset with bands "
                             f"{list(bands)}; its assets are {listing}; set input.asset to the one to read")
        chosen = fitting[0]
    href = chosen.get("href")
    if not isinstance(href, str) or not href:
        raise InputError(f"{label} STAC Item {path!r}: the asset chosen has no href")
    return _absolute(Source(href), item)


def asset_named(item: Source, label: str, asset: str, *, key: str, storage: StorageConfig | None) -> Source:
    """The absolute URL or path of the asset ``asset`` of a scene's STAC Item (a mask, ``input.mask_t1``).

    Args:
        item: the scene's item.
        label: ``t1`` or ``t2``, for messages.
        asset: the asset key.
        key: the config key that named it, for messages.
        storage: how an ``s3://`` item is reached.

    Raises:
        InputError: the item cannot be read, or lists no such asset (its assets are named).
    """
    path = item.redacted
    assets = _load(item, label, storage).get("assets")
    chosen = assets.get(asset) if isinstance(assets, dict) else None
    if not isinstance(chosen, dict) or not isinstance(chosen.get("href"), str) or not chosen["href"]:
        listing = ", ".join(sorted(assets)) if isinstance(assets, dict) else "none"
        raise InputError(f"{key} {asset!r} is neither a file nor an asset of {label}'s STAC Item {path!r} "
                         f"(its assets: {listing}); set {key} to one of them, or to a mask raster's path or URL")
    return _absolute(Source(chosen["href"]), item)


def item_datetime_text(item: Source, label: str, *, storage: StorageConfig | None) -> str | None:
    """The acquisition time a STAC Item states: its ``datetime``, else its ``start_datetime`` (as written).

    Raises:
        InputError: the item cannot be read.
    """
    properties = _load(item, label, storage).get("properties")
    if not isinstance(properties, dict):
        return None
    for key in ("datetime", "start_datetime"):
        if isinstance(properties.get(key), str) and properties[key]:
            return str(properties[key])
    return None


def _load(item: Source, label: str, storage: StorageConfig | None) -> dict[str, Any]:
    path, url, scheme = item.redacted, item.url, item.url_scheme
    try:
        if scheme in ("http", "https"):
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - the user's URL
                text = response.read().decode()
        elif scheme == "s3":
            text = _s3_text(url, storage or StorageConfig())
        elif scheme:
            raise InputError(f"{label} STAC Item {path!r}: items are read from local files, http(s):// "
                             "or s3:// URLs; copy it to one of those")
        else:
            text = item.path.read_text()
        doc = json.loads(text)
    except InputError:
        raise
    except (OSError, urllib.error.URLError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{label} STAC Item {path!r} cannot be read as JSON ({exc}); check the "
                         "path or URL") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{label} STAC Item {path!r} is not a JSON object")
    return doc


def _s3_text(url: str, storage: StorageConfig) -> str:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = url.split("://", 1)[1].partition("/")
    config = BotoConfig(signature_version=UNSIGNED) if storage.anonymous else None
    try:
        session = boto3.Session(profile_name=storage.profile, region_name=storage.region)
        body = session.client("s3", endpoint_url=storage.endpoint, config=config).get_object(Bucket=bucket, Key=key)
        return str(body["Body"].read().decode())
    except (BotoCoreError, ClientError) as exc:
        raise OSError(str(exc)) from exc


def _is_geotiff(asset: dict[str, Any]) -> bool:
    media = str(asset.get("type", "")).lower()
    href = urlsplit(str(asset.get("href", ""))).path.lower()
    return "image/tiff" in media or (not media and href.endswith((".tif", ".tiff")))


def _has_bands(asset: dict[str, Any], bands: tuple[int, ...]) -> bool:
    listed = asset.get("eo:bands") or asset.get("raster:bands") or asset.get("bands")
    return not isinstance(listed, list) or len(listed) >= max(bands)


def _absolute(href: Source, item: Source) -> Source:
    """``href`` as an absolute URL or path, relative ones taken from the item's location."""
    if href.remote or os.path.isabs(href.text):
        return href
    if item.remote:
        url = item.url
        if item.url_scheme in ("http", "https"):
            return Source(urljoin(url, href.text))
        folder, _, _ = url.partition("://")[2].rpartition("/")  # s3://bucket/dir/item.json -> bucket/dir
        return Source(f"{url.partition('://')[0]}://{posixpath.normpath(f'{folder}/{href.text}')}")
    return Source(str((item.path.resolve().parent / href.text).resolve()))
