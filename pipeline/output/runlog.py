"""``run.json``: what a run is (fingerprint, inputs, config) and how it went.

Written whole at every status change (in a folder a temporary file, fsync and
``os.replace``; on object storage one ``PUT``, which replaces the object whole), so a
crash leaves the last consistent record: ``running`` or ``failed``, never a ``complete``
that is not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.output.layout import RUN_JSON
from s2c_batch.pipeline.output.location import Location

log = logging.getLogger(__name__)


def read_record(out: Location) -> dict[str, Any] | None:
    """The ``run.json`` of the run at ``out``, or ``None`` when there is none or it cannot be read."""
    try:
        raw = out.read(RUN_JSON)
        return None if raw is None else json.loads(raw)
    except (OSError, ValueError):
        return None


@dataclass
class RunLog:
    """The mutable record behind ``run.json`` at ``out``.

    Attributes:
        out: the run's output location.
        data: the record as last written.
    """

    out: Location
    data: dict[str, Any] = field(default_factory=dict)

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
