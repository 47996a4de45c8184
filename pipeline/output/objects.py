"""A prefix of a bucket as a run's output location: ``s3://bucket/prefix`` or ``gs://bucket/prefix``.

The same layout and rules as a folder (:mod:`~s2c_batch.pipeline.output.folder`), on
storage without rename and without append:

- ``.s2c/lock`` is created with ``If-None-Match: *`` (``ifGenerationMatch=0`` on ``gs://``;
  a second run's create fails), holds the pid and host of its run, and is removed when the
  run ends (:mod:`~s2c_batch.pipeline.output.lock`);
- the ledger is one empty object per finished block, ``.s2c/blocks/ROW_COL``
  (:class:`~s2c_batch.pipeline.output.ledger.ObjectLedger`);
- a file product is built on local scratch disk and uploaded; it appears only when the
  upload completes;
- :meth:`ObjectLocation.probe` writes and removes a probe object before any work, so a
  missing bucket, bad credentials or an unreachable endpoint is an :class:`OutputError`
  (exit 4) naming the URL and the fix.

Each scheme's requests go through its client (:data:`~s2c_batch.pipeline.storage.clients.CLIENTS`:
S3 through obstore, Google Cloud Storage through gcsfs). A location holds the URL and the
(secret-free) ``storage`` section only, so it pickles into task arguments; the client is
built where it is used, from that machine's own credential chain.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError, OutputExistsError
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.layout import (
    COREG_FILE,
    FIT_FILE,
    LEDGER_PREFIX,
    PROBE,
    PRODUCT_FILES,
    RUN_JSON,
    STATE_DIR,
    STORE,
)
from s2c_batch.pipeline.output.ledger import ObjectLedger
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.staging import scratch
from s2c_batch.pipeline.storage.clients import CLIENTS, Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectLocation(Location):
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
    def client(self) -> Client:
        """The client of the bucket's service."""
        return CLIENTS[self.scheme]

    @property
    def url(self) -> str:  # noqa: D102
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def name(self) -> str:  # noqa: D102
        return self.prefix.rsplit("/", 1)[-1] or self.bucket

    def href(self, key: str = "") -> str:  # noqa: D102
        return self.key_url(key) if key else self.url

    def _key(self, key: str) -> str:
        """``key``'s full key in the bucket (the prefix joined)."""
        return "/".join(p for p in (self.prefix, key.strip("/")) if p)

    def child(self, key: str) -> ObjectLocation:  # noqa: D102
        return replace(self, prefix=self._key(key))

    def split(self) -> tuple[ObjectLocation, str]:
        """The location one level up and the last name of this one's prefix (``--out`` and ``run.json``)."""
        head, _, name = self.prefix.rpartition("/")
        return replace(self, prefix=head), name

    # --- operations -------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:  # noqa: D102
        return self.client.read(self.storage, self.bucket, self._key(key))

    def write(self, key: str, data: bytes) -> None:  # noqa: D102
        self.client.write(self.storage, self.bucket, self._key(key), data)

    def create(self, key: str, data: bytes) -> bool:  # noqa: D102
        return self.client.create(self.storage, self.bucket, self._key(key), data)

    def upload(self, key: str, local: Path) -> None:  # noqa: D102
        self.client.upload(self.storage, self.bucket, self._key(key), local)

    def exists(self, key: str) -> bool:  # noqa: D102
        return self.client.exists(self.storage, self.bucket, self._key(key))

    def list(self, prefix: str) -> list[str]:  # noqa: D102
        start = len(self._key("")) + 1 if self.prefix else 0
        return [k[start:] for k in self.client.list_keys(self.storage, self.bucket, self._key(prefix.strip("/")))]

    def delete(self, key: str) -> None:  # noqa: D102
        self.client.delete(self.storage, self.bucket, [self._key(key)])

    def delete_prefix(self, prefix: str) -> None:  # noqa: D102
        self.client.delete(self.storage, self.bucket, [self._key(k) for k in self.list(prefix)])

    def zarr_store(self, key: str) -> Any:  # noqa: D102
        return self.client.zarr_store(self.storage, self.bucket, self._key(key))

    # --- failures and checked writes --------------------------------------------------------

    def storage_fix(self, exc: BaseException) -> str:
        """What a failure under this prefix most likely means, and its fix."""
        text = str(exc)
        client = self.client
        kind = client.failure(exc)
        if kind == "bucket":
            return f"the bucket {self.bucket!r} does not exist: create it or correct the URL"
        if kind == "credentials":
            return f"the credentials were refused: check {client.credentials}, and that they may write this prefix"
        if kind == "endpoint":
            endpoint = client.endpoint(self.storage) or client.service
            return f"the endpoint {endpoint} cannot be reached: check {client.endpoint_settings} and the network"
        return f"the storage answered: {text.splitlines()[0][:300] if text else type(exc).__name__}"

    def write_error(self, key: str, exc: BaseException) -> OutputError:  # noqa: D102
        return OutputError(f"--out {self.url!r}: writing {self.key_url(key)!r} failed; {self.storage_fix(exc)}")

    def save(self, key: str, data: bytes, *, what: str | None = None, sync: bool = False,  # noqa: D102
             failure: str | None = None) -> None:
        try:
            self.write(key, data)  # one PUT: the old object or the new one, never part
        except Exception as exc:
            raise self.write_error(key, exc) from exc

    # --- files built on local disk ----------------------------------------------------------

    def workdir(self, key: str, *, prefix: str) -> contextlib.AbstractContextManager[Path]:  # noqa: D102
        return scratch(prefix)

    def place(self, key: str, local: Path) -> None:  # noqa: D102
        try:
            self.upload(key, local)
        except Exception as exc:
            raise self.write_error(key, exc) from exc

    @contextlib.contextmanager
    def staged(self, key: str, *, what: str) -> Iterator[Path]:  # noqa: D102
        with scratch("s2c-stage-") as folder:
            local = folder / Path(key).name
            with atomic_path(local, what=what) as tmp:  # a full scratch disk reads as a full folder does
                yield tmp
            self.place(key, local)

    # --- a run's life here ------------------------------------------------------------------

    def probe(self) -> None:
        """Write and remove a probe object under the prefix.

        Raises:
            OutputError: the bucket is missing, the credentials are refused or the endpoint is unreachable.
        """
        try:
            self.write(PROBE, b"ok")
            self.delete(PROBE)
        except Exception as exc:
            raise self.write_error(PROBE, exc) from exc

    def ensure(self) -> None:  # noqa: D102
        self.probe()

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Check, before any work, that the prefix is writable and what a previous run there allows.

        Raises:
            OutputError: the bucket is missing, credentials refused, the endpoint unreachable,
                or both flags given.
            OutputLockedError: a live run holds the prefix.
            OutputExistsError: a previous run is there and neither flag was given.
        """
        if resume and overwrite:
            raise OutputError("--resume and --overwrite exclude each other; pick one")
        self.probe()
        holder = lock.live_lock_holder(self)
        if holder is not None:
            raise lock.locked_error(self, holder)
        if lock.has_run(self) and not (resume or overwrite):
            raise OutputExistsError(
                f"--out {self.url!r} already holds a run; pass --resume to finish it or "
                "--overwrite to replace it"
            )

    def precheck(self, *, resume: bool, overwrite: bool) -> None:  # noqa: D102
        self.prepare(resume=resume, overwrite=overwrite)

    def claim(self, *, resume: bool, overwrite: bool) -> contextlib.AbstractContextManager[None]:  # noqa: D102
        return lock.locked(self)  # prepared by precheck, before any work

    def ledger(self) -> ObjectLedger:  # noqa: D102
        return ObjectLedger(self)

    def remove_temporaries(self) -> None:  # noqa: D102
        return None  # an upload leaves no temporary under the prefix

    def clear_products(self) -> None:
        """Remove what a previous run wrote under the prefix (only s2c-batch's own names; keeps the lock).

        ``run.json`` goes first, so no moment shows a ``complete`` record beside partial products.
        """
        self.delete(RUN_JSON)
        self.delete_prefix(STORE)
        for name in PRODUCT_FILES:
            self.delete(name)
        self.delete_prefix(LEDGER_PREFIX)
        self.delete(f"{STATE_DIR}/{FIT_FILE}")
        self.delete(f"{STATE_DIR}/{COREG_FILE}")
