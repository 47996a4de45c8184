"""What a night of a series is and how it went: its spec, each pair's outcome, the result, ``series.json``.

``series.json`` is written whole at the start of the night (``running``) and at its end
(``complete``, ``failed`` or ``interrupted``): the dates (the lookup table of
``first_change``), each pair (its folder, what was decided, how it went, its changed and
unknown area, its from/to summary), what was computed tonight, the series products, the
summary and the timings.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.run.recovery import Mode
from s2c_batch.pipeline.series.dates import SeriesDate, SeriesPair

log = logging.getLogger(__name__)

#: The series' record and its night's report, under its folder.
SERIES_JSON = "series.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class SeriesSpec:
    """One series to run: its dates, folder and config.

    Attributes:
        name: its name (the STAC collection's id, the summary's and the report's).
        dates: the inputs, in any order.
        out: the series folder or prefix.
        cfg: the resolved config (its ``series`` section says how to pair the dates).
        overwrite: replace pairs made from other inputs or config.
    """

    name: str
    dates: tuple[Source, ...]
    out: Location
    cfg: Config
    overwrite: bool = False


@dataclass
class PairOutcome:
    """How one pair of the night went.

    Attributes:
        pair: the pair.
        out: its run's location.
        status: ``complete`` (computed tonight), ``skipped`` (reused), ``failed``,
            ``interrupted``, ``not_started``.
        mode: what was decided (``fresh``, ``resume``, ``overwrite``, ``skip``).
        duration_s: seconds its run took.
        products: what its run lists.
        record: its ``run.json``.
        changed_area_km2: changed area of its mask (from the series pass).
        unknown_area_km2: nodata area of its mask.
        exit_code: a failed run's exit code.
        error: a failed run's message.
        error_type: its exception's type.
        exception: the exception itself (not serialised).
    """

    pair: SeriesPair
    out: Location
    status: str = "not_started"
    mode: Mode | None = None
    duration_s: float = 0.0
    products: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    changed_area_km2: float | None = None
    unknown_area_km2: float | None = None
    exit_code: int = 0
    error: str | None = None
    error_type: str | None = None
    exception: BaseException | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The pair's entry in ``series.json`` and in a batch summary."""
        return {
            "index": self.pair.index, "name": self.pair.name, "t1": self.pair.t1.index, "t2": self.pair.t2.index,
            "out": self.out.url, "status": self.status, "mode": self.mode, "duration_s": round(self.duration_s, 3),
            "changed_area_km2": None if self.changed_area_km2 is None else round(self.changed_area_km2, 6),
            "unknown_area_km2": None if self.unknown_area_km2 is None else round(self.unknown_area_km2, 6),
            "transitions": self.record.get("transitions"), "summary": self.record.get("summary"),
            "min_area": self.record.get("min_area"), "products": sorted(self.products),
            "error": None if self.error is None else {
                "exit_code": self.exit_code, "type": self.error_type, "message": self.error},
        }


@dataclass
class SeriesResult:
    """What a night of a series did.

    Attributes:
        name: the series' name.
        out: its folder or prefix.
        status: ``complete``, ``failed`` or ``interrupted``.
        dates: its dates, in order.
        pairs: each pair's outcome, in order.
        products: the series products written (file name -> path or URL).
        summary: lasting change per first date, flicker, unknown (:meth:`SeriesStats.summary`).
        duration_s: seconds the night took.
        report: where the night's report is, or ``None``.
        exception: the error that stopped it (``run_series`` raises it again).
        location: the series' folder or prefix.
    """

    name: str
    out: str
    status: str = "running"
    dates: tuple[SeriesDate, ...] = ()
    pairs: list[PairOutcome] = field(default_factory=list)
    products: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    report: str | None = None
    exception: BaseException | None = None
    location: Location | None = field(default=None, repr=False)

    @property
    def computed(self) -> list[str]:
        """The pairs computed tonight (not reused)."""
        return [p.pair.name for p in self.pairs if p.status == "complete"]

    @property
    def exit_code(self) -> int:
        """0 complete; the failed pair's exit code (or 1); 130 interrupted."""
        if self.status == "complete":
            return 0
        if self.status == "interrupted":
            return 130
        return int(getattr(self.exception, "exit_code", 1) or 1)

    def to_dict(self) -> dict[str, Any]:
        """The series' entry in a batch summary (``series.json`` holds more)."""
        e = self.exception
        return {
            "name": self.name, "out": self.out, "status": self.status, "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3), "dates": [d.to_json() for d in self.dates],
            "computed": self.computed, "pairs": [p.to_dict() for p in self.pairs], "products": sorted(self.products),
            "summary": self.summary, "report": self.report,
            "error": None if e is None else {"exit_code": self.exit_code, "type": type(e).__name__, "message": str(e)},
        }


def save_record(out: Location, record: dict[str, Any], result: SeriesResult, *, quietly: bool = False) -> None:
    """Write ``series.json`` whole (a failure is logged rather than raised when ``quietly``)."""
    e = result.exception
    record.update(status=result.status, pairs=[p.to_dict() for p in result.pairs], computed=result.computed,
                  products=result.products, summary=result.summary, report=result.report,
                  error=None if e is None else f"{type(e).__name__}: {e}")
    if result.status != "running":
        record["finished"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = json.dumps(record, indent=2, default=str).encode()
    try:
        out.save(SERIES_JSON, data, what="series record", sync=True)
    except OutputError as exc:
        if not quietly:
            raise
        log.warning("series.json keeps its previous record: %s", exc)


