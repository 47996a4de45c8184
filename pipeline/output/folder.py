"""A local (or shared-filesystem) folder as a run's output location.

Files appear whole through a rename (:func:`~s2c_batch.pipeline.atomic.atomic_path`),
the lock is created with ``O_EXCL``, and the block ledger is one file of lines
(:class:`~s2c_batch.pipeline.output.ledger.BlockLedger`). The layout is
:mod:`~s2c_batch.pipeline.output.layout`'s; the lock and the "a run is here" rule are
:mod:`~s2c_batch.pipeline.output.lock`'s, as for a prefix on object storage. Only files of
s2c-batch's own names are ever removed by ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError, OutputExistsError
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.layout import (
    COREG_FILE,
    DERIVED_FILES,
    FIT_FILE,
    LEDGER_FILE,
    PROBE,
    PRODUCT_FILES,
    RUN_JSON,
    STATE_DIR,
    STORE,
)
from s2c_batch.pipeline.output.ledger import BlockLedger
from s2c_batch.pipeline.output.location import Location


@dataclass(frozen=True)
class FolderLocation(Location):
    """A local (or shared-filesystem) folder.

    Attributes:
        root: the folder.
    """

    root: Path

    @property
    def url(self) -> str:  # noqa: D102
        return str(self.root)

    @property
    def name(self) -> str:  # noqa: D102
        return self.root.resolve().name

    def path(self, key: str) -> Path:
        """The file of ``key``."""
        return self.root / key

    def href(self, key: str = "") -> Path:  # noqa: D102
        return self.path(key) if key else self.root

    def child(self, key: str) -> FolderLocation:  # noqa: D102
        return FolderLocation(self.path(key))

    def resolve(self) -> FolderLocation:  # noqa: D102
        return FolderLocation(self.root.resolve())

    # --- operations -------------------------------------------------------------------------

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

    def file_exists(self, key: str) -> bool:  # noqa: D102
        return self.path(key).is_file()

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

    # --- failures and checked writes --------------------------------------------------------

    def write_error(self, key: str, exc: BaseException) -> OutputError:  # noqa: D102
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return OutputError(f"--out {self.url!r}: writing {self.key_url(key)!r} failed ({reason}); "
                           "fix the output folder")

    def save(self, key: str, data: bytes, *, what: str | None = None, sync: bool = False,  # noqa: D102
             failure: str | None = None) -> None:
        options = {"failure": failure} if failure else {}
        with atomic_path(self.path(key), what=what or key, sync=sync, **options) as tmp:
            tmp.write_bytes(data)

    # --- files built on local disk ----------------------------------------------------------

    @contextlib.contextmanager
    def workdir(self, key: str, *, prefix: str) -> Iterator[Path]:  # noqa: D102
        yield self.path(key).parent

    def place(self, key: str, local: Path) -> None:  # noqa: D102
        os.replace(local, self.path(key))

    @contextlib.contextmanager
    def staged(self, key: str, *, what: str) -> Iterator[Path]:  # noqa: D102
        with atomic_path(self.path(key), what=what) as tmp:
            yield tmp

    # --- a run's life here ------------------------------------------------------------------

    def probe(self) -> None:  # noqa: D102
        return None

    def ensure(self) -> None:  # noqa: D102
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create --out {str(self.root)!r} ({exc.strerror or exc})") from exc

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Make the folder ready: create it, or check what an existing one allows.

        Raises:
            OutputLockedError: a live run holds the folder.
            OutputExistsError: a previous run is there and neither flag was given.
            OutputError: the folder cannot be created or written.
        """
        out = self.root
        if resume and overwrite:
            raise OutputError("--resume and --overwrite exclude each other; pick one")
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {str(out)!r} exists and is not a directory; choose another path")
        holder = lock.live_lock_holder(self)
        if holder is not None:
            raise lock.locked_error(self, holder)
        if lock.has_run(self) and not (resume or overwrite):
            raise OutputExistsError(
                f"--out {str(out)!r} already holds a run; pass --resume to finish it or "
                "--overwrite to replace it"
            )
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / STATE_DIR).mkdir(exist_ok=True)
            probe = out / PROBE
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"--out {str(out)!r} is not writable ({exc.strerror or exc})") from exc

    def precheck(self, *, resume: bool, overwrite: bool) -> None:  # noqa: D102
        return None  # nothing may be created before the inputs pass: checked by claim

    @contextlib.contextmanager
    def claim(self, *, resume: bool, overwrite: bool) -> Iterator[None]:  # noqa: D102
        created = not self.root.exists()
        self.prepare(resume=resume, overwrite=overwrite)
        try:
            with lock.locked(self):
                yield
        finally:
            if created and not lock.has_run(self):
                self.remove_empty()

    def ledger(self) -> BlockLedger:  # noqa: D102
        return BlockLedger(self.root)

    def clear_products(self) -> None:  # noqa: D102
        out = self.root
        shutil.rmtree(out / STORE, ignore_errors=True)
        for name in (RUN_JSON, *PRODUCT_FILES):
            (out / name).unlink(missing_ok=True)
        (out / LEDGER_FILE).unlink(missing_ok=True)
        (out / STATE_DIR / FIT_FILE).unlink(missing_ok=True)
        (out / STATE_DIR / COREG_FILE).unlink(missing_ok=True)

    def remove_temporaries(self) -> None:  # noqa: D102
        out = self.root
        patterns = [f".{Path(n).stem}.*.tmp.tif" for n in PRODUCT_FILES]  # COG temporaries
        patterns += [f".{n}.*tmp" for n in (*DERIVED_FILES, RUN_JSON)]  # atomic writes
        for pattern in patterns:
            for path in out.glob(pattern):
                path.unlink(missing_ok=True)
        store_path = out / STORE
        if store_path.is_dir():
            for path in store_path.rglob("*.partial"):  # zarr's atomic shard writes
                path.unlink(missing_ok=True)

    def remove_empty(self) -> None:
        """Remove the folder when it holds nothing but an empty state folder (a run that wrote nothing)."""
        out = self.root
        state = out / STATE_DIR
        if state.is_dir() and not any(state.iterdir()):
            state.rmdir()
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
