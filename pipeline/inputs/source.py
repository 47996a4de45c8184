"""An input as the user named it, classified once: a local path, a URL or a GDAL ``/vsi...`` path.

Where a command or the Python API receives the name of a scene (``T1``, ``T2``, a band
file, a truth raster, a runs file's ``t1``), it becomes a :class:`Source`; everything
downstream asks the value what it is instead of looking at the string again:

- ``remote``: an ``s3://``, ``gs://`` or ``http(s)://`` URL, or a ``/vsi...`` path. GDAL
  reads these through its virtual file systems (``s3://b/k`` is ``/vsis3/b/k``,
  ``gs://b/k`` is ``/vsigs/b/k``, ``https://h/k`` is ``/vsicurl/https://h/k``; rasterio
  translates ``s3://`` only for reading and only with boto3, so the translation is made
  here, once, for every opener: :attr:`Source.gdal_path`);
- ``is_url``: any ``scheme://`` (``az://`` and ``ftp://`` too), what ``--out`` refuses
  or accepts by scheme;
- ``is_stac_item``: a name (without its query) ending in ``.json``, read as a STAC Item
  (:mod:`~s2c_batch.pipeline.inputs.stac_item`);
- anything else is a local file.

Example:
    >>> Source.parse("s3://bucket/t1.tif").remote, Source.parse("t1.tif").remote
    (True, False)
    >>> Source.parse("https://me:pw@h/t1.tif?X-Amz-Signature=abc").redacted
    'https://h/t1.tif'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

#: URL schemes read through GDAL's virtual file systems, and the prefix of each.
VSI_PREFIXES = {"s3": "/vsis3/", "gs": "/vsigs/", "http": "/vsicurl/", "https": "/vsicurl/"}

_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


@dataclass(frozen=True)
class Source:
    """A named input, classified once (see the module docstring); small and picklable.

    Attributes:
        text: the name as given (``str`` of a path).
        scheme: the URL's scheme in lower case (``""`` for a path).
        remote: a URL GDAL reads, or a GDAL ``/vsi...`` path.
    """

    text: str
    scheme: str = field(init=False, repr=False)
    remote: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.text).scheme.lower()
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "remote", self.text.startswith("/vsi") or scheme in VSI_PREFIXES)

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | Source) -> Source:
        """The source a user's string or path names (a :class:`Source` is returned as it is)."""
        return value if isinstance(value, Source) else cls(str(value))

    def __str__(self) -> str:
        return self.text

    @property
    def is_url(self) -> bool:
        """Whether it names a URL or a GDAL ``/vsi...`` path (any scheme: ``az://`` and ``ftp://`` too)."""
        return self.remote or _ANY_URL.match(self.text) is not None

    @property
    def path(self) -> Path:
        """A local source's path."""
        return Path(self.text)

    @property
    def gdal_path(self) -> str:
        """The name GDAL opens: URLs become ``/vsi...`` paths, the rest is unchanged.

        Example:
            >>> Source("s3://bucket/dir/t1.tif").gdal_path, Source("https://h:8080/t1.tif").gdal_path
            ('/vsis3/bucket/dir/t1.tif', '/vsicurl/https://h:8080/t1.tif')
        """
        if self.scheme in ("s3", "gs"):
            return VSI_PREFIXES[self.scheme] + self.text.split("://", 1)[1]
        if self.scheme in ("http", "https"):
            return VSI_PREFIXES[self.scheme] + self.text
        return self.text

    @property
    def url(self) -> str:
        """The URL of a remote source (``/vsis3/b/k`` -> ``s3://b/k``); other names unchanged."""
        for scheme in ("s3", "gs"):
            if self.text.startswith(VSI_PREFIXES[scheme]):
                return f"{scheme}://{self.text.removeprefix(VSI_PREFIXES[scheme])}"
        if self.text.startswith("/vsicurl/"):
            return self.text.removeprefix("/vsicurl/")
        return self.text

    @property
    def url_scheme(self) -> str:
        """The scheme of :attr:`url` in lower case (``s3`` for ``/vsis3/...``; ``""`` for a path)."""
        return urlsplit(self.url).scheme.lower() if self.remote else ""

    @property
    def redacted(self) -> str:
        """The name fit for ``run.json``, logs and the STAC item: no user, password or query.

        A query may hold a signature (a presigned URL) and a user part a password.
        """
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in VSI_PREFIXES:
            return self.text
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @property
    def name(self) -> str:
        """The file name, local or remote (``s3://b/dir/t1.tif`` -> ``t1.tif``)."""
        return PurePosixPath(urlsplit(self.redacted).path).name if self.remote else os.path.basename(self.text)

    @property
    def is_stac_item(self) -> bool:
        """Whether it names a STAC Item (its path, without a query, ends in ``.json``)."""
        text = urlsplit(self.url).path if self.remote else self.text
        return text.lower().endswith(".json")

    @property
    def absolute(self) -> str:
        """A local path made absolute (workers may run elsewhere); a remote name as given."""
        return self.text if self.remote else str(Path(self.text).resolve())


def is_remote(path: str | os.PathLike[str] | Source) -> bool:
    """Whether ``path`` is a URL or a GDAL ``/vsi...`` path rather than a local file.

    Example:
        >>> is_remote("s3://bucket/t1.tif"), is_remote("/vsicurl/https://h/t1.tif"), is_remote("t1.tif")
        (True, True, False)
    """
    return Source.parse(path).remote


def is_url(text: str | os.PathLike[str] | Source) -> bool:
    """Whether ``text`` names a URL or a GDAL ``/vsi...`` path (any scheme: ``az://`` and ``ftp://`` too)."""
    return Source.parse(text).is_url


def gdal_path(path: str | os.PathLike[str] | Source) -> str:
    """:attr:`Source.gdal_path` of ``path``."""
    return Source.parse(path).gdal_path


def as_url(path: str | os.PathLike[str] | Source) -> str:
    """:attr:`Source.url` of ``path``."""
    return Source.parse(path).url


def redact(path: str | os.PathLike[str] | Source) -> str:
    """:attr:`Source.redacted` of ``path``."""
    return Source.parse(path).redacted


def input_name(path: str | os.PathLike[str] | Source) -> str:
    """:attr:`Source.name` of ``path``."""
    return Source.parse(path).name
