"""One client per object-store scheme, behind the same operations: the registry of ``--out`` schemes.

A new scheme is a module beside :mod:`~s2c_batch.pipeline.storage.s3` and
:mod:`~s2c_batch.pipeline.storage.gcs` with the same functions, and one entry in
:data:`CLIENTS`; :class:`~s2c_batch.pipeline.output.objects.ObjectLocation` then serves
it, with its lock, ledger, Zarr store and error messages.

Example:
    >>> sorted(CLIENTS), CLIENTS["gs"].service
    (['gs', 's3'], 'Google Cloud Storage')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.storage import gcs, s3


@dataclass(frozen=True)
class Client:
    """The operations of one scheme; keys are full keys of the bucket.

    Attributes:
        service: the service's name, for messages (``AWS``).
        credentials: what to check when the credentials are refused.
        endpoint_settings: the settings that name another endpoint.
        endpoint: the endpoint a ``storage`` section names (``None``: the service's own).
        failure: ``bucket``, ``credentials``, ``endpoint`` or ``None``: what a failed request means.
        storage_errors: what a failed request raises besides ``OSError``.
        read: the bytes of an object, or ``None`` when it does not exist.
        write: write an object whole (atomic).
        create: write an object only if it does not exist; ``False`` when it did.
        upload: copy a local file to an object that appears only once complete.
        exists: whether a key is an object or a prefix holding objects.
        list_keys: the keys under a prefix, recursively, sorted.
        delete: remove objects; missing ones are no error.
        zarr_store: the Zarr store of a prefix.
    """

    service: str
    credentials: str
    endpoint_settings: str
    endpoint: Callable[[StorageConfig], str | None]
    failure: Callable[[BaseException], str | None]
    storage_errors: Callable[[], tuple[type[BaseException], ...]]
    read: Callable[[StorageConfig, str, str], bytes | None]
    write: Callable[[StorageConfig, str, str, bytes], None]
    create: Callable[[StorageConfig, str, str, bytes], bool]
    upload: Callable[[StorageConfig, str, str, Path], None]
    exists: Callable[[StorageConfig, str, str], bool]
    list_keys: Callable[[StorageConfig, str, str], list[str]]
    delete: Callable[[StorageConfig, str, list[str]], None]
    zarr_store: Callable[[StorageConfig, str, str], Any]


#: URL scheme -> its client. The schemes ``--out`` accepts, in the order messages name them.
CLIENTS: dict[str, Client] = {
    "s3": Client(s3.SERVICE, s3.CREDENTIALS, s3.ENDPOINT_SETTINGS, s3.endpoint, s3.failure, s3.storage_errors,
                 s3.read, s3.write, s3.create, s3.upload, s3.exists, s3.list_keys, s3.delete, s3.zarr_store),
    "gs": Client(gcs.SERVICE, gcs.CREDENTIALS, gcs.ENDPOINT_SETTINGS, gcs.endpoint, gcs.failure, gcs.storage_errors,
                 gcs.read, gcs.write, gcs.create, gcs.upload, gcs.exists, gcs.list_keys, gcs.delete, gcs.zarr_store),
}


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a failed request of any scheme raises besides ``OSError``."""
    return tuple(error for client in CLIENTS.values() for error in client.storage_errors())
