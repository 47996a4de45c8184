"""A STAC Item as a scene: the GeoTIFF/COG asset it lists, read in place.

A T1 or T2 whose name ends in ``.json`` (a local file, an ``http(s)://`` or ``s3://``
URL) is read as a STAC Item. ``input.asset`` names the asset to read; unset, the first
GeoTIFF/COG asset (media type ``image/tiff``) that has the bands ``input.bands`` asks for
(``eo:bands`` or ``raster:bands``, when the item says) is taken. A relative ``href`` is
resolved against the item's own location. The scene is then the asset's URL or path:
it is what the workers read and what the fingerprint identifies.
"""

from __future__ import annotations

import json
import os
import posixpath
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.remote import as_url, is_remote, redact

#: Seconds a download of an item may take.
FETCH_TIMEOUT_S = 30.0


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """Whether an input names a STAC Item (its path, without a query, ends in ``.json``)."""
    text = urlsplit(as_url(str(path))).path if is_remote(path) else str(path)
    return text.lower().endswith(".json")


def resolve_item(path: str | os.PathLike[str], label: str, *, asset: str | None, bands: tuple[int, ...],
                 storage: StorageConfig | None) -> str:
    """The raster a STAC Item input stands for: its chosen asset's absolute URL or path.

    Args:
        path: the item (a local JSON file or a URL).
        label: ``t1`` or ``t2``, for messages.
        asset: the asset key to read (``input.asset``), or ``None`` for the first fitting one.
        bands: the 1-based bands the run reads (``input.bands``).
        storage: how an ``s3://`` item is reached.

    Raises:
        InputError: the item cannot be read or is no STAC Item, the asset named is absent,
            or no asset fits; the message lists the item's assets.
    """
    item = _load(path, label, storage)
    assets = item.get("assets")
    if item.get("type") != "Feature" or not isinstance(assets, dict) or not assets:
        raise InputError(f"{label} {redact(path)!r} is not a STAC Item with assets (its \"type\" must be "
                         "\"Feature\" and it must hold \"assets\"); give an Item, or the raster itself")
    listing = ", ".join(f"{k} ({v.get('type', 'no type')})" for k, v in assets.items() if isinstance(v, dict))
    if asset is not None:
        if asset not in assets:
            raise InputError(f"{label} STAC Item {redact(path)!r} has no asset {asset!r}; its assets are "
                             f"{listing}; set input.asset to one of them")
        chosen = assets[asset]
    else:
        fitting = [a for a in assets.values() if isinstance(a, dict) and _is_geotiff(a) and _has_bands(a, bands)]
        if not fitting:
            raise InputError(f"{label} STAC Item {redact(path)!r} has no GeoTIFF/COG asset with bands "
                             f"{list(bands)}; its assets are {listing}; set input.asset to the one to read")
        chosen = fitting[0]
    href = chosen.get("href")
    if not isinstance(href, str) or not href:
        raise InputError(f"{label} STAC Item {redact(path)!r}: the asset chosen has no href")
    return _absolute(href, path)


def _load(path: str | os.PathLike[str], label: str, storage: StorageConfig | None) -> dict[str, Any]:
    url = as_url(str(path))
    scheme = urlsplit(url).scheme.lower() if is_remote(path) else ""
    try:
        if scheme in ("http", "https"):
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - the user's URL
                text = response.read().decode()
        elif scheme == "s3":
            text = _s3_text(url, storage or StorageConfig())
        elif scheme:
            raise InputError(f"{label} STAC Item {redact(path)!r}: items are read from local files, http(s):// "
                             "or s3:// URLs; copy it to one of those")
        else:
            text = Path(path).read_text()
        item = json.loads(text)
    except InputError:
        raise
    except (OSError, urllib.error.URLError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{label} STAC Item {redact(path)!r} cannot be read as JSON ({exc}); check the "
                         "path or URL") from exc
    if not isinstance(item, dict):
        raise InputError(f"{label} STAC Item {redact(path)!r} is not a JSON object")
    return item


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


def _absolute(href: str, item: str | os.PathLike[str]) -> str:
    """``href`` as an absolute URL or path, relative ones taken from the item's location."""
    if is_remote(href) or os.path.isabs(href):
        return href
    if is_remote(item):
        url = as_url(str(item))
        if urlsplit(url).scheme.lower() in ("http", "https"):
            return urljoin(url, href)
        folder, _, _ = url.partition("://")[2].rpartition("/")  # s3://bucket/dir/item.json -> bucket/dir
        return f"{url.partition('://')[0]}://{posixpath.normpath(f'{folder}/{href}')}"
    return str((Path(item).resolve().parent / href).resolve())
