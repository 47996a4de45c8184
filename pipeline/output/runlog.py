"""``run.json``: what a run is (fingerprint, inputs, config) and how it went, and the timing of its stages.

Written whole at every status change (in a folder a temporary file, fsync and
``os.replace``; on object storage one ``PUT``, which replaces the object whole), so a
crash leaves the last consistent record: ``running`` or ``failed``, never a ``complete``
that is not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.layout import RUN_JSON
from s2c_batch.pipeline.output.location import Location

log = logging.getLogger(__name__)


class Timings:
    """Wall times of a run's stages, in seconds, in the order they ended (``run.json``'s ``timings_s``).

    Example:
        >>> timings = Timings()
        >>> with timings.stage("open"):
        ...     pass
        >>> list(timings.rounded())
        ['open']
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed stage; it is recorded only when it succeeds."""
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0

    def total(self, name: str = "total") -> None:
        """Record the time since these timings started under ``name``."""
        self.seconds[name] = time.perf_counter() - self.started

    def rounded(self) -> dict[str, float]:
        """The times rounded to 0.1 ms, as ``run.json`` holds them."""
        return {k: round(v, 4) for k, v in self.seconds.items()}


def read_record(out: Location) -> dict[str, Any] | None:
    """The ``run.json`` of the run at ``out``, or ``None`` when there is none or it cannot be read."""
    try:
        raw = out.read(RUN_JSON)
        return None if raw is None else json.loads(raw)
    except (OSError, ValueError):
        return None


@dataclass
class RunLog:
    """The mutable record behind ``run.json`` at ``out``, and the run's stage timings.

    Attributes:
        out: the run's output location.
        data: the record as last written.
        timings: the run's stage times (:meth:`stage`).
    """

    out: Location
    data: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Time the enclosed stage into :attr:`timings` (written with the next status change)."""
        return self.timings.stage(name)

    def update(self, **values: Any) -> None:
        """Set top-level fields and write the file."""
        self.data.update(values)
        self.write()

    def update_quietly(self, **values: Any) -> bool:
        """Like :meth:`update`, but a failed write is logged, not raised.

        For recording a failure: a full disk must not hide the error that stopped the
        run. The file then keeps its last record (``running``), which resumes the same way.

        Returns:
            True when the file was written.
        """
        try:
            self.update(**values)
        except OutputError as exc:
            log.warning("run.json keeps its previous record: %s", exc)
            return False
        return True

    def write(self) -> None:
        """Write the record whole (a folder's file atomically: temporary file, fsync, rename).

        Raises:
            OutputError: the file cannot be written (a full disk); the previous
                ``run.json`` stays as it was.
        """
        data = json.dumps(self.data, indent=2, sort_keys=False, default=str).encode()
        self.out.save(RUN_JSON, data, what="run record", sync=True, failure="writing {path} failed")
