"""The night's report of a series (``report.html`` in its folder), and its part of a batch's report.

Built with :mod:`~s2c_batch.pipeline.products.report`: a row per pair (its quicklook,
changed and unknown area, largest transitions), the region once on the map, and the
series' own sections: lasting change per the date it first appeared, with a map of
where (``first_change`` decimated from its COG, one colour per date), and links to the
series products.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from rasterio.enums import Resampling

from s2c_batch.kernels.raster.quicklook import decimation
from s2c_batch.kernels.raster.series import date_colours, first_change_rgb
from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.inputs.remote import open_raster
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
from s2c_batch.pipeline.series.dates import SeriesDate
from s2c_batch.pipeline.series.products import SERIES_PRODUCTS, SERIES_STORE
from s2c_batch.pipeline.series.record import REPORT_FILE, SERIES_JSON, SeriesResult

log = logging.getLogger(__name__)

#: Longest side of the series map in the report, in pixels.
MAP_SIDE = 512


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
                         [[s["lasting_change_m2"], s["flicker_m2"], s["pending_change_m2"], s["unknown_m2"]]])
            + (_series_map(out, result.dates) if "first_change.tif" in result.products else "")))
    if not result.pairs:  # stopped before the night began: nothing of it to link
        return runs, sections, region
    names = [*[f"{p}.tif" for p in SERIES_PRODUCTS], SERIES_STORE, COLLECTION_FILE]
    links = [(n, product_href(out, n, base)) for n in names if n in result.products]
    links += [(k, product_href(out, k, base)) for k in (SERIES_JSON, REPORT_FILE)]
    sections.append((f"Series {result.name}: products", "<p>" + " ".join(
        f'<a href="{html.escape(h, quote=True)}">{html.escape(n)}</a>' for n, h in links) + "</p>"))
    return runs, sections, region


def _series_map(out: Location, dates: Sequence[SeriesDate]) -> str:
    """``first_change`` as an embedded PNG (one colour per first date) with its legend; ``""`` if unreadable."""
    try:
        with open_raster(str(out.href("first_change.tif")), out.storage) as src:
            _, shape = decimation((src.height, src.width), MAP_SIDE)
            first = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    except Exception as exc:  # the map is a picture: the night's report goes on without it
        log.warning("the series map was not drawn: %s", exc)
        return ""
    buf = io.BytesIO()
    Image.fromarray(first_change_rgb(first, len(dates))).save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode()
    colours = date_colours(len(dates))
    keys = [("no lasting change", colours[0]), *((f"first seen {d.label}", colours[d.index]) for d in dates[1:]),
            ("unknown", first_change_rgb(np.array([[255]], np.uint8), len(dates))[0, 0])]
    legend = " ".join(
        f'<span style="white-space:nowrap"><span style="display:inline-block;width:0.9em;height:0.9em;'
        f'background:rgb({r},{g},{b});border:1px solid #888"></span> {html.escape(text)}</span>'
        for text, (r, g, b) in keys)
    zoom = max(1, MAP_SIDE // 2 // max(shape))  # a small scene drawn larger, its pixels kept square
    return (f'<figure><img src="data:image/png;base64,{data}" alt="first lasting change by date" '
            f'style="image-rendering:pixelated;width:{shape[1] * zoom}px">'
            f"<figcaption>where lasting change first appeared: {legend}</figcaption></figure>")
