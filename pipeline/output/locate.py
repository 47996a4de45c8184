"""``--out`` (or any output name) as a :class:`~s2c_batch.pipeline.output.location.Location`.

Example:
    >>> from pathlib import Path
    >>> open_location("night/31UFS").href(), open_location("s3://b/night/31UFS").url
    (PosixPath('night/31UFS'), 's3://b/night/31UFS')
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.remote import resolve_storage
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output.folder import FolderLocation
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.objects import ObjectLocation
from s2c_batch.pipeline.storage.clients import CLIENTS

#: Object-store URL schemes accepted for ``--out``.
OUT_SCHEMES = tuple(CLIENTS)


def open_location(out: str | os.PathLike[str] | Source | Location, storage: StorageConfig | None = None) -> Location:
    """The output location of ``--out``: a local folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

    Args:
        out: the name as given (a :class:`Location` is returned as it is).
        storage: the ``storage`` section; resolved here for a prefix
            (:func:`~s2c_batch.pipeline.inputs.remote.resolve_storage`).

    Raises:
        OutputError: ``out`` is a URL of a scheme not supported for outputs, a ``/vsi...``
            path, or a URL without a bucket (exit 4).
        ConfigError: ``AWS_ENDPOINT_URL`` is unusable (exit 2).
    """
    if isinstance(out, Location):
        return out
    source = Source.parse(out)
    if not source.is_url:
        return FolderLocation(Path(source.text))
    parts = urlsplit(source.text)
    if parts.scheme.lower() not in OUT_SCHEMES:
        raise OutputError(
            f"--out {source.redacted!r}: outputs can go to a local folder or to "
            f"{', '.join(s + '://' for s in OUT_SCHEMES)} URLs; give s3://bucket/prefix, gs://bucket/prefix or a folder"
        )
    scheme = parts.scheme.lower()
    if not parts.netloc:
        raise OutputError(f"--out {source.redacted!r} names no bucket; give {scheme}://bucket/prefix")
    return ObjectLocation(parts.netloc, parts.path.strip("/"), resolve_storage(storage or StorageConfig()), scheme)


def as_location(out: str | os.PathLike[str] | Location) -> Location:
    """``out`` as a location: a path is a local folder (never a URL), a location stays as it is."""
    return out if isinstance(out, Location) else FolderLocation(Path(out))
