"""The night's report of a series (``report.html`` in its folder), and its part of a batch's report.

Built with :mod:`~s2c_batch.pipeline.products.report`: a row per pair (its quicklook,
changed and unknown area, largest transitions), the region once on the map, and the
series' own sections: lasting change per the date it first appeared, and links to the
series products.
"""

from __future__ import annotations

import html
import os
from datetime import UTC, datetime
from pathlib import Path

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.products.report import (
    ReportRun,
    html_table,
    product_href,
    record_footprint,
    render_report,
    report_run,
)
from s2c_batch.pipeline.series.collection import COLLECTION_FILE
from s2c_batch.pipeline.series.products import SERIES_PRODUCTS, SERIES_STORE
from s2c_batch.pipeline.series.record import REPORT_FILE, SERIES_JSON, SeriesResult


def write_series_report(out: Location, result: SeriesResult, copy_to: str | os.PathLike[str] | None) -> str:
    """Write the night's report into the series folder (and to ``copy_to``); returns where it is."""
    here = out.href()
    page = _report_page(out, result, here if isinstance(here, Path) else Path("."))
    with out.staged(REPORT_FILE, what="night report") as tmp:
        tmp.write_text(page, encoding="utf-8")
    if copy_to is not None:  # links relative to the copy's own folder
        target = Path(copy_to)
        with atomic_path(target, what="night report") as tmp:
            tmp.write_text(_report_page(out, result, target.parent), encoding="utf-8")
    return str(out.href(REPORT_FILE))


def _report_page(out: Location, result: SeriesResult, base: Path) -> str:
    """The night's report of a series, its links relative to ``base`` (local folders) or URLs."""
    runs, sections, region = series_report_parts(result, base)
    dates = result.dates
    meta = [f"{len(dates)} dates from {dates[0].label} to {dates[-1].label}" if dates else "no dates",
            f"{len(result.computed)} pair(s) computed tonight: {', '.join(result.computed) or 'none'}",
            f"status {result.status} in {result.duration_s:.1f} s"]
    if result.exception is not None:
        meta.append(f"error: {result.exception}")
    return render_report(f"Series {result.name}: night of {datetime.now(UTC):%Y-%m-%d}", runs, meta=meta,
                         sections=sections, map_runs=[region])


def series_report_parts(result: SeriesResult, base: Path, *, tonight_only: bool = False,
                        prefix: str = "") -> tuple[list[ReportRun], list[tuple[str, str]], ReportRun]:
    """What a night's report shows of a series: its pairs' rows, its sections, its region on the map.

    Args:
        result: the series' night.
        base: the report's folder (links to local products are relative to it).
        tonight_only: rows for the pairs computed (or failed) tonight only, not those reused.
        prefix: put before each pair's name (``series/``).

    Returns:
        ``(rows, sections, region)``: the region is drawn once, shaded by tonight's changed area.
    """
    out = result.location or open_location(result.out)
    shown = [p for p in result.pairs if not tonight_only or p.status not in ("skipped", "not_started")]
    runs = [report_run(f"{prefix}{p.pair.name}", p.status, p.out, record=p.record, report_dir=base, mode=p.mode,
                       changed_area_km2=p.changed_area_km2, unknown_area_km2=p.unknown_area_km2, error=p.error,
                       products=sorted(p.products)) for p in shown]
    footprint = next((r.footprint for r in runs if r.footprint), None)
    if footprint is None:
        footprint = next((record_footprint(p.record) for p in result.pairs if p.record), None)
    tonight = sum(p.changed_area_km2 or 0.0 for p in result.pairs if p.status == "complete")
    region = ReportRun(f"{result.name} (tonight)", result.status, changed_area_km2=tonight, footprint=footprint)
    sections = []
    if result.summary:
        s = result.summary
        rows = [[d["label"], d["datetime"] or "", d["pixels"], d["area_m2"]] for d in s["lasting_change_by_first_date"]]
        sections.append((f"Series {result.name}: lasting change by the date it first appeared", html_table(
            ["first date", "acquired", "pixels", "area (m²)"], rows or [["none", "", 0, 0.0]])
            + html_table(["lasting (m²)", "flicker: changed and came back (m²)", "too recent to tell yet (m²)",
                          "unknown (m²)"],
                         [[s["lasting_change_m2"], s["flicker_m2"], s["pending_change_m2"], s["unknown_m2"]]])))
    if not result.pairs:  # stopped before the night began: nothing of it to link
        return runs, sections, region
    names = [*[f"{p}.tif" for p in SERIES_PRODUCTS], SERIES_STORE, COLLECTION_FILE]
    links = [(n, product_href(out, n, base)) for n in names if n in result.products]
    links += [(k, product_href(out, k, base)) for k in (SERIES_JSON, REPORT_FILE)]
    sections.append((f"Series {result.name}: products", "<p>" + " ".join(
        f'<a href="{html.escape(h, quote=True)}">{html.escape(n)}</a>' for n, h in links) + "</p>"))
    return runs, sections, region
