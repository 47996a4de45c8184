"""Where a run's outputs go: a local folder or a prefix on object storage, behind one interface.

A run needs a handful of operations on its output location, named by keys relative
to ``--out`` (``run.json``, ``.s2c/lock``, ``change.zarr/...``):

- read a small object, write one atomically (it appears whole or not at all),
- upload a local file (a COG built on scratch disk) so that it appears only when complete,
- create an object only if it does not exist (the lock: ``If-None-Match: *`` on S3),
- list and delete under a prefix (the block ledger, ``--overwrite``),
- the Zarr store of a sub-path (a folder, or a ``zarr.storage.ObjectStore``).

:class:`LocalLocation` keeps the local behaviour (``os.replace``, ``O_EXCL``).
:class:`ObjectLocation` speaks to S3 through obstore, and to Google Cloud Storage
(``gs://``) through gcsfs (:mod:`~s2c_batch.pipeline.storage.gcs`); object stores have no
rename and no append, which is why the lock is a conditional create and the ledger one
object per block (:mod:`~s2c_batch.pipeline.output.objects`).

An :class:`ObjectLocation` holds the URL and the (secret-free) ``storage`` section only,
so it pickles into task arguments; the client of the storage is built where it is used,
from that machine's own credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance role; for ``gs://``, ``GOOGLE_APPLICATION_CREDENTIALS`` or
the instance's service account).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.remote import resolve_storage
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.storage import gcs
from s2c_batch.pipeline.storage.s3 import PART_SIZE, s3_store

#: Object-store URL schemes accepted for ``--out``.
OUT_SCHEMES = ("s3", "gs")


class OutputLocation(ABC):
    """The root of a run's outputs; keys are ``/``-separated paths relative to it."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The location as the user named it, fit for logs and errors (no secret)."""

    def key_url(self, key: str) -> str:
        """Where ``key`` is, for messages: the file's path, or the object's URL."""
        return f"{self.url}/{key}"

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The bytes of ``key``, or ``None`` when it does not exist."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Write ``key`` so that readers see the old object or the whole new one."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; ``False`` when it already did."""

    @abstractmethod
    def upload(self, key: str, local: Path) -> None:
        """Copy the local file ``local`` to ``key``; ``key`` appears only once complete."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object (or, locally, the file or folder) ``key`` exists."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix/`` (recursively), relative to the location."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is no error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under ``prefix/``; nothing there is no error."""

    @abstractmethod
    def zarr_store(self, key: str) -> Any:
        """What ``zarr.open_group`` and ``xarray.to_zarr`` take for the store at ``key``."""


@dataclass(frozen=True)
class LocalLocation(OutputLocation):
    """A local (or shared-filesystem) folder."""

    root: Path

    @property
    def url(self) -> str:  # noqa: D102
        return str(self.root)

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.root / key

    def read(self, key: str) -> bytes | None:  # noqa: D102
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes) -> None:  # noqa: D102
        with atomic_path(self.path(key), what=key) as tmp:
            tmp.write_bytes(data)

    def create(self, key: str, data: bytes) -> bool:  # noqa: D102
        try:
            fd = os.open(self.path(key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def upload(self, key: str, local: Path) -> None:  # noqa: D102
        os.replace(local, self.path(key))

    def exists(self, key: str) -> bool:  # noqa: D102
        return self.path(key).exists()

    def list(self, prefix: str) -> list[str]:  # noqa: D102
        base = self.path(prefix)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def delete(self, key: str) -> None:  # noqa: D102
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:  # noqa: D102
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def zarr_store(self, key: str) -> Any:  # noqa: D102
        return str(self.path(key))


@dataclass(frozen=True)
class ObjectLocation(OutputLocation):
    """A prefix of a bucket: ``s3://bucket/prefix`` (obstore) or ``gs://bucket/prefix`` (gcsfs).

    Attributes:
        bucket: the bucket.
        prefix: the key prefix, without leading or trailing ``/`` (may be empty).
        storage: the resolved ``storage`` section (endpoint, region, profile; no secret).
        scheme: ``"s3"`` or ``"gs"``, which service (and client) the bucket is on.
    """

    bucket: str
    prefix: str
    storage: StorageConfig = field(default_factory=StorageConfig)
    scheme: str = "s3"

    @property
    def url(self) -> str:  # noqa: D102
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def on_gcs(self) -> bool:
        """Whether the bucket is on Google Cloud Storage (``gs://``)."""
        return self.scheme == "gs"

    def _key(self, key: str) -> str:
        """``key``'s full key in the bucket (the prefix joined)."""
        return "/".join(p for p in (self.prefix, key.strip("/")) if p)

    def child(self, key: str) -> ObjectLocation:
        """The location of the prefix ``key`` under this one (e.g. the Zarr store ``change.zarr``)."""
        return replace(self, prefix=self._key(key))

    def split(self) -> tuple[ObjectLocation, str]:
        """The location one level up and the last name of this one's prefix (``--out`` and ``run.json``)."""
        head, _, name = self.prefix.rpartition("/")
        return replace(self, prefix=head), name

    def store(self, key: str = "") -> Any:
        """An ``obstore.store.S3Store`` rooted at ``prefix/key``, built from this machine's credentials (S3 only).

        One per process for each root, setting and credential environment
        (:func:`~s2c_batch.pipeline.storage.s3.s3_store`): a block task's writes reuse its
        worker's client and connections.
        """
        return s3_store(self.bucket, self._key(key), self.storage)

    def read(self, key: str) -> bytes | None:  # noqa: D102
        import obstore

        if self.on_gcs:
            return gcs.read(self.storage, self.bucket, self._key(key))
        try:
            return bytes(obstore.get(self.store(), key).bytes())
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:  # noqa: D102
        import obstore

        if self.on_gcs:
            return gcs.write(self.storage, self.bucket, self._key(key), data)
        obstore.put(self.store(), key, data)  # one PUT replaces an object atomically

    def create(self, key: str, data: bytes) -> bool:  # noqa: D102
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        if self.on_gcs:
            return gcs.create(self.storage, self.bucket, self._key(key), data)
        try:
            obstore.put(self.store(), key, data, mode="create")  # If-None-Match: *
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def upload(self, key: str, local: Path) -> None:  # noqa: D102
        import obstore

        if self.on_gcs:
            return gcs.upload(self.storage, self.bucket, self._key(key), local)
        # Multipart above PART_SIZE: the object appears at CompleteMultipartUpload, never partly.
        obstore.put(self.store(), key, local, chunk_size=PART_SIZE)

    def exists(self, key: str) -> bool:  # noqa: D102
        import obstore

        if self.on_gcs:
            return gcs.exists(self.storage, self.bucket, self._key(key))
        try:
            obstore.head(self.store(), key)
        except FileNotFoundError:
            return bool(self.list(key))  # a "folder" (the Zarr store) exists when it holds keys
        return True

    def list(self, prefix: str) -> list[str]:  # noqa: D102
        import obstore

        keys: list[str] = []
        stem = prefix.strip("/")
        if self.on_gcs:
            start = len(self._key("")) + 1 if self.prefix else 0
            return [k[start:] for k in gcs.list_keys(self.storage, self.bucket, self._key(stem))]
        for batch in obstore.list(self.store(), prefix=stem + "/" if stem else None):
            keys.extend(str(meta["path"]) for meta in batch)
        return sorted(keys)

    def delete(self, key: str) -> None:  # noqa: D102
        import obstore

        if self.on_gcs:
            return gcs.delete(self.storage, self.bucket, [self._key(key)])
        try:
            obstore.delete(self.store(), key)
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix: str) -> None:  # noqa: D102
        import obstore

        keys = self.list(prefix)
        if self.on_gcs:
            return gcs.delete(self.storage, self.bucket, [self._key(k) for k in keys])
        if keys:
            obstore.delete(self.store(), keys)

    def zarr_store(self, key: str) -> Any:  # noqa: D102
        from zarr.storage import ObjectStore

        if self.on_gcs:
            return gcs.zarr_store(self.storage, self.bucket, self._key(key))
        return ObjectStore(self.store(key))


def open_location(out: str | os.PathLike[str], storage: StorageConfig | None = None) -> OutputLocation:
    """The output location of ``--out``: a local folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

    Raises:
        OutputError: ``out`` is a URL of a scheme not supported for outputs, a ``/vsi...``
            path, or a URL without a bucket (exit 4).
    """
    source = Source.parse(out)
    text = source.text
    if not source.is_url:
        return LocalLocation(Path(out))
    parts = urlsplit(text)
    if parts.scheme.lower() not in OUT_SCHEMES:
        raise OutputError(
            f"--out {source.redacted!r}: outputs can go to a local folder or to "
            f"{', '.join(s + '://' for s in OUT_SCHEMES)} URLs; give s3://bucket/prefix, gs://bucket/prefix or a folder"
        )
    scheme = parts.scheme.lower()
    if not parts.netloc:
        raise OutputError(f"--out {source.redacted!r} names no bucket; give {scheme}://bucket/prefix")
    return ObjectLocation(parts.netloc, parts.path.strip("/"), resolve_storage(storage or StorageConfig()), scheme)
