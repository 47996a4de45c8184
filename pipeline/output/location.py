"""Where a run's outputs go, as one type: :class:`Location`, a local folder or a prefix on object storage.

A run needs a handful of operations on its output location, named by keys relative
to ``--out`` (``run.json``, ``.s2c/lock``, ``change.zarr/...``):

- read a small object, write one atomically (it appears whole or not at all),
- upload a local file (a COG built on scratch disk) so that it appears only when complete,
- create an object only if it does not exist (the lock),
- list and delete under a prefix (the block ledger, ``--overwrite``),
- the Zarr store of a sub-path (a folder, or an object store's Zarr store);

and a run's life on it: checks before any work (:meth:`Location.precheck`), holding it
(:meth:`Location.claim`: refuse, resume or overwrite, and the lock), its block ledger,
removing what a previous run left. The two kinds,
:class:`~s2c_batch.pipeline.output.folder.FolderLocation` and
:class:`~s2c_batch.pipeline.output.objects.ObjectLocation`, differ in how (a rename and
``O_EXCL`` in a folder; no rename and no append on object storage, hence a conditional
create for the lock and one object per block for the ledger); callers never ask which
kind they hold. :func:`~s2c_batch.pipeline.output.locate.open_location` makes one from
``--out``.

A location holds names and the (secret-free) ``storage`` section only, so it pickles
into task arguments; the client of the storage is built where it is used.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import OutputError


class Ledger(Protocol):
    """The blocks whose write succeeded (:mod:`~s2c_batch.pipeline.output.ledger`)."""

    def done(self) -> set[tuple[int, int]]:
        """Blocks recorded as written."""

    def add(self, index: tuple[int, int]) -> None:
        """Record one block; it stays recorded once this returns."""

    def rewrite(self, blocks: set[tuple[int, int]]) -> None:
        """Make the ledger hold exactly ``blocks``."""


class Location(ABC):
    """The root of a run's outputs; keys are ``/``-separated paths relative to it.

    Attributes:
        storage: how GDAL and the clients reach the files here (``None`` for a folder).
    """

    storage: StorageConfig | None = None

    # --- names --------------------------------------------------------------------------

    @property
    @abstractmethod
    def url(self) -> str:
        """The location as the user named it, fit for logs and errors (no secret)."""

    @property
    @abstractmethod
    def name(self) -> str:
        """Its last name: the folder's, or the prefix's last part (else the bucket); a STAC item's id."""


    def key_url(self, key: str) -> str:
        """Where ``key`` is, for messages: the file's path, or the object's URL."""
        return f"{self.url}/{key}"

    @abstractmethod
    def href(self, key: str = "") -> Path | str:
        """What a run reports for ``key`` (or for the location itself): the local path, or the URL."""

    @abstractmethod
    def child(self, key: str) -> Location:
        """The location of ``key`` under this one (a run of ``compare``, the Zarr store)."""

    def resolve(self) -> Location:
        """The same location, independent of the working directory (a folder made absolute)."""
        return self

    # --- operations -----------------------------------------------------------------------

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

    def file_exists(self, key: str) -> bool:
        """Whether ``key`` is a file (an object; locally, not a folder)."""
        return self.exists(key)

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

    # --- failures and checked writes --------------------------------------------------------

    def storage_fix(self, exc: BaseException) -> str | None:
        """What a failed request of an object store most likely means, and its fix (``None`` for a folder)."""
        return None

    @abstractmethod
    def write_error(self, key: str, exc: BaseException) -> OutputError:
        """A failed write of ``key`` as an :class:`OutputError` naming the file or URL and the fix."""

    @abstractmethod
    def save(self, key: str, data: bytes, *, what: str | None = None, sync: bool = False,
             failure: str | None = None) -> None:
        """Write ``key`` whole (a local atomic rename, or one ``PUT``).

        Args:
            key: the file or object.
            data: its bytes.
            what: what it is, for a folder's error message (default: ``key``).
            sync: in a folder, fsync the temporary before the rename (a record a resume decides from).
            failure: a folder's error message's start (:func:`~s2c_batch.pipeline.atomic.atomic_path`).

        Raises:
            OutputError: it cannot be written; the message names the file or URL and the fix.
        """

    # --- files built on local disk ----------------------------------------------------------

    @abstractmethod
    def workdir(self, key: str, *, prefix: str) -> contextlib.AbstractContextManager[Path]:
        """A local folder to build ``key``'s file in (beside it, or on local scratch disk, removed after).

        Args:
            key: the file to build.
            prefix: the scratch folder's name prefix (``s2c-cog-``).
        """

    @abstractmethod
    def place(self, key: str, local: Path) -> None:
        """Put the finished local file ``local`` at ``key`` (a rename, or an upload).

        Raises:
            OutputError: the upload failed (names the object's URL and the likely fix).
        """

    @abstractmethod
    def staged(self, key: str, *, what: str) -> contextlib.AbstractContextManager[Path]:
        """Yield a local path to write ``key``'s file to; place it here when the block succeeds.

        In a folder, a temporary beside the file and a rename; on object storage, a file on
        local scratch disk and an upload. A reader never sees half a file, and the
        temporaries are gone after success and failure alike.

        Args:
            key: the file's key (``quicklook.png``).
            what: what the file is, for the error message (``"quicklook"``).

        Raises:
            OutputError: the local write, the rename or the upload failed.
        """

    # --- a run's life here ------------------------------------------------------------------

    @abstractmethod
    def probe(self) -> None:
        """Fail early when a prefix cannot be written (a write probe); a folder is checked by :meth:`prepare`.

        Raises:
            OutputError: the bucket is missing, credentials are refused or the endpoint is unreachable.
        """

    @abstractmethod
    def ensure(self) -> None:
        """Make sure files can be put here: create the folder, or probe the prefix.

        Raises:
            OutputError: the folder cannot be created, or the prefix cannot be written.
        """

    @abstractmethod
    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Check what a previous run here allows, and that this run can write here.

        Raises:
            OutputError: both flags given, or the location cannot be written.
            OutputLockedError: a live run holds it.
            OutputExistsError: a previous run is there and neither flag was given.
        """

    @abstractmethod
    def precheck(self, *, resume: bool, overwrite: bool) -> None:
        """The checks made before the inputs are opened (:meth:`prepare` on object storage).

        A missing bucket or refused credentials fail before any work; a folder is
        checked when it is claimed, since nothing may be created before the inputs pass.
        """

    @abstractmethod
    def claim(self, *, resume: bool, overwrite: bool) -> contextlib.AbstractContextManager[None]:
        """Hold the location for a run: what :meth:`precheck` left to check, then its lock.

        A folder is created if needed, and removed again when the run wrote nothing.

        Raises:
            OutputLockedError: another live run holds it.
            OutputError, OutputExistsError: as :meth:`prepare`.
        """

    @abstractmethod
    def ledger(self) -> Ledger:
        """The run's block ledger: a file of lines, or one object per block."""

    @abstractmethod
    def clear_products(self) -> None:
        """Remove what a previous run wrote here (only s2c-batch's own names; keeps the lock)."""

    @abstractmethod
    def remove_temporaries(self) -> None:
        """Remove what an interrupted write left under temporary names (an upload leaves none)."""
