"""The morning report: one self-contained HTML page per night, for people rather than engineers.

``batch`` and ``series`` write one at the end of every night. It shows:

- a table of the runs: status, changed area, unknown (nodata) area, the largest from/to
  transitions (runs with class maps), the error of a failed run, links to the products;
- a small footprint map of the region (inline SVG, WGS84 longitude/latitude, no basemap),
  each footprint shaded by the changed area of its runs that night;
- each run's quicklook;
- sections the caller adds (a series' lasting change per date).

Self-contained: the style is inline, there is no script, the quicklooks are embedded as
``data:`` URIs and the map is SVG, so the page opens offline, from a mail attachment or a
bucket alike. Links to products are relative to the page when both are local folders,
else the products' URLs. Dask's performance report (``--report``) is another file, for
engineers, and stays as it is.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rasterio.crs import CRS

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output.layout import QUICKLOOK_FILE
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.products.stac import wgs84_footprint

#: Transitions listed per run in the table.
TABLE_TRANSITIONS = 3

#: Size of the footprint map, in CSS pixels.
MAP_W, MAP_H = 480, 300

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1b1f24;max-width:1200px}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #ddd}
.meta{color:#555;margin:0 0 1rem}table{border-collapse:collapse;font-size:.9rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.complete,.skipped{color:#116329}.failed,.interrupted{color:#b3261e;font-weight:600}.not_started{color:#777}
.error{color:#b3261e;font-size:.8rem}figure{display:inline-block;margin:0 1rem 1rem 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #d0d7de}figcaption{font-size:.85rem;color:#333}
.links{font-size:.8rem}.links a{margin-right:.4rem;white-space:nowrap}svg text{font-size:10px;fill:#1b1f24}
"""


@dataclass(frozen=True)
class ReportRun:
    """One row of the report.

    Attributes:
        name: the run's name.
        status: ``complete``, ``skipped``, ``failed``, ``interrupted``, ``not_started``.
        mode: ``fresh``, ``resume``, ``overwrite``, ``skip``, or ``None``.
        changed_area_km2: changed area, or ``None`` when unknown (a failed run).
        unknown_area_km2: nodata area (not observed, outside the scenes), or ``None``.
        transitions: the run's largest transitions (``run.json``'s ``summary``), or empty.
        error: a failed run's message.
        links: label -> href of its products (relative to the report, or URLs).
        quicklook: the PNG's bytes, or ``None``.
        footprint: its grid's outline as a GeoJSON Polygon in WGS84, or ``None``.
    """

    name: str
    status: str
    mode: str | None = None
    changed_area_km2: float | None = None
    unknown_area_km2: float | None = None
    transitions: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    quicklook: bytes | None = None
    footprint: Mapping[str, Any] | None = None


def report_run(name: str, status: str, out: Location | None, *, record: Mapping[str, Any] | None, report_dir: Path,
               mode: str | None = None, changed_area_km2: float | None = None,
               unknown_area_km2: float | None = None, error: str | None = None,
               products: Sequence[str] = ()) -> ReportRun:
    """A row of the report from what a run left at ``out``: its quicklook, footprint and products.

    Args:
        name: the run's name.
        status: how it ended.
        out: its output location (``None``: nothing to read).
        record: its ``run.json`` (grid, summary), or ``None``.
        report_dir: the folder the report is written to (links are relative to it).
        mode: fresh, resume, overwrite or skip.
        changed_area_km2: its changed area.
        unknown_area_km2: its nodata area.
        error: a failed run's message.
        products: the product files to link.
    """
    record = record or {}
    quicklook = None
    if out is not None and QUICKLOOK_FILE in products:
        try:
            quicklook = out.read(QUICKLOOK_FILE)
        except OSError:
            quicklook = None
    summary = record.get("summary") or {}
    links = {}
    if out is not None:
        for product in sorted(products):
            links[product] = product_href(out, product, report_dir)
        links["run.json"] = product_href(out, "run.json", report_dir)
    return ReportRun(name=name, status=status, mode=mode, changed_area_km2=changed_area_km2,
                     unknown_area_km2=unknown_area_km2, error=error, links=links, quicklook=quicklook,
                     transitions=tuple(summary.get("largest_transitions") or ()),
                     footprint=record_footprint(record))


def product_href(out: Location, key: str, report_dir: Path) -> str:
    """Where the report links ``key`` of ``out``: a path relative to the report's folder, else a URL."""
    target = out.href(key)
    if isinstance(target, Path):
        return Path(os.path.relpath(target.resolve(), report_dir.resolve())).as_posix()
    return str(target)


def record_footprint(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The WGS84 outline of the grid a ``run.json`` records (``None`` when it records none)."""
    grid = record.get("grid")
    if not isinstance(grid, Mapping):
        return None
    try:
        t = [float(v) for v in grid["transform"]][:6]
        g = Grid(CRS.from_user_input(grid["crs"]).to_wkt(), (t[0], t[1], t[2], t[3], t[4], t[5]),
                 int(grid["height"]), int(grid["width"]))
        return wgs84_footprint(g)[0]
    except Exception:  # a record of another version: the map just leaves it out
        return None


def render_report(title: str, runs: Sequence[ReportRun], *, meta: Sequence[str] = (),
                  sections: Sequence[tuple[str, str]] = (), map_runs: Sequence[ReportRun] | None = None) -> str:
    """The page's HTML.

    Args:
        title: the page's heading.
        runs: its rows, in order.
        meta: lines under the heading (when, where, counts).
        sections: ``(heading, HTML fragment)`` pairs added after the table (already escaped).
        map_runs: what the map draws (default: ``runs``; a series draws its region once).
    """
    e = html.escape
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines = [*meta, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no run"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>{e(title)}</h1>", *(f'<p class="meta">{e(line)}</p>' for line in lines),
        '<h2 id="map">Region</h2>', footprint_map(runs if map_runs is None else map_runs),
        '<h2 id="runs">Runs</h2>', _table(runs),
    ]
    for heading, fragment in sections:
        parts += [f"<h2>{e(heading)}</h2>", fragment]
    parts.append('<h2 id="quicklooks">Quicklooks</h2>')
    shown = [r for r in runs if r.quicklook]
    if not shown:
        parts.append("<p>No quicklook: no run wrote one.</p>")
    for r in shown:
        data = base64.b64encode(r.quicklook or b"").decode()
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="quicklook of {e(r.name)}">'
                     f"<figcaption>{e(r.name)}: t1 | t2 | change</figcaption></figure>")
    parts.append(f'<p class="meta">Written by s2c-batch at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def check_report_file(path: str | os.PathLike[str] | None, *, option: str) -> None:
    """Fail early when the report could not be written at ``path`` (nothing for ``None``).

    Raises:
        OutputError: the path is a folder, or its folder does not exist or is not writable (exit 4).
    """
    if path is None:
        return
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise OutputError(f"{option} {str(path)!r} is a folder; give a file name, e.g. night.html")
    if not folder.is_dir():
        raise OutputError(f"{option} {str(path)!r}: the folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{option} {str(path)!r}: the folder {str(folder)!r} is not writable")


def write_report(path: str | os.PathLike[str], title: str, runs: Sequence[ReportRun], *,
                 meta: Sequence[str] = (), sections: Sequence[tuple[str, str]] = (),
                 map_runs: Sequence[ReportRun] | None = None) -> Path:
    """Render the page and write it atomically to a local file.

    Raises:
        OutputError: the file cannot be written.
    """
    target = Path(path)
    with atomic_path(target, what="night report") as tmp:
        tmp.write_text(render_report(title, runs, meta=meta, sections=sections, map_runs=map_runs), encoding="utf-8")
    return target


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain table fragment (cells escaped; numbers right-aligned) for :func:`render_report`'s sections."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{e(_number(c))}</td>' if isinstance(c, (int, float))
                         else f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4f}"


def _table(runs: Sequence[ReportRun]) -> str:
    e = html.escape
    head = ("<tr><th>run</th><th>status</th><th>changed (km²)</th><th>unknown (km²)</th>"
            "<th>largest transitions (m²)</th><th>products</th></tr>")
    rows = []
    for r in runs:
        status = f'<span class="{e(r.status)}">{e(r.status)}</span>'
        if r.mode and r.status != "skipped":  # a skipped run's mode says the same
            status += f" ({e(r.mode)})"
        if r.error:
            status += f'<div class="error">{e(r.error)}</div>'
        moves = "<br>".join(f"{e(str(t.get('from')))} &rarr; {e(str(t.get('to')))}: {float(t.get('area_m2', 0)):,.1f}"
                            for t in r.transitions[:TABLE_TRANSITIONS]) or "&ndash;"
        links = " ".join(f'<a href="{e(href, quote=True)}">{e(label)}</a>' for label, href in r.links.items())
        rows.append(f"<tr><td>{e(r.name)}</td><td>{status}</td><td class=\"num\">{_km2(r.changed_area_km2)}</td>"
                    f"<td class=\"num\">{_km2(r.unknown_area_km2)}</td><td>{moves}</td>"
                    f"<td class=\"links\">{links or '&ndash;'}</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _km2(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:,.6f}"


def footprint_map(runs: Sequence[ReportRun]) -> str:
    """An inline SVG of the runs' footprints, shaded by their changed area (runs with one footprint share it).

    Longitude is scaled by the cosine of the mean latitude, so shapes keep their proportions.
    """
    e = html.escape
    shapes: dict[str, list[ReportRun]] = {}
    rings: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        if not r.footprint:
            continue
        ring = [(float(x), float(y)) for x, y in r.footprint["coordinates"][0]]
        key = repr([(round(x, 7), round(y, 7)) for x, y in ring])
        shapes.setdefault(key, []).append(r)
        rings[key] = ring
    if not shapes:
        return "<p>No footprint: no run recorded its grid.</p>"
    xs = [x for ring in rings.values() for x, _ in ring]
    ys = [y for ring in rings.values() for _, y in ring]
    k = math.cos(math.radians((min(ys) + max(ys)) / 2))
    w, h = max((max(xs) - min(xs)) * k, 1e-9), max(max(ys) - min(ys), 1e-9)
    pad = 16
    scale = min((MAP_W - 2 * pad) / w, (MAP_H - 2 * pad) / h)
    left, top = min(xs), max(ys)

    def xy(x: float, y: float) -> tuple[float, float]:
        return pad + (x - left) * k * scale, pad + (top - y) * scale

    most = max([sum(r.changed_area_km2 or 0 for r in group) for group in shapes.values()] + [0.0])
    items = []
    taken: list[tuple[float, float]] = []  # label positions: a label near another moves down a line
    for key, group in shapes.items():
        area = sum(r.changed_area_km2 or 0 for r in group)
        failed = any(r.status in ("failed", "interrupted") for r in group)
        alpha = 0.12 + 0.68 * (area / most if most else 0)
        fill = "#b3261e" if not failed else "#777777"
        names = ", ".join(r.name for r in group)
        label = group[0].name if len(group) == 1 else f"{group[0].name} (+{len(group) - 1})"
        px = [xy(x, y) for x, y in rings[key]]
        cx, cy = sum(p[0] for p in px[:-1]) / max(1, len(px) - 1), sum(p[1] for p in px[:-1]) / max(1, len(px) - 1)
        small = max(p[0] for p in px) - min(p[0] for p in px) < 8 or max(p[1] for p in px) - min(p[1] for p in px) < 8
        shape = (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5"' if small else
                 '<polygon points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in px) + '"')
        right = cx > MAP_W / 2  # labels stay inside the map
        tx = min(max(cx + (-8 if right else 8), 4.0), MAP_W - 4.0)
        ty = min(max(cy + 4, 12.0), MAP_H - 4.0)
        for _ in range(len(taken) + 1):
            if not any(abs(tx - x) < 60 and abs(ty - y) < 11 for x, y in taken):
                break
            ty = ty + 12 if ty + 12 <= MAP_H - 4 else 12.0
        taken.append((tx, ty))
        items.append(f'<g><title>{e(names)}: {area:,.6f} km² changed</title>'
                     f'{shape} fill="{fill}" fill-opacity="{alpha:.2f}" stroke="#1b1f24" stroke-width="1"/>'
                     f'<text x="{tx:.1f}" y="{ty:.1f}" '
                     f'text-anchor="{"end" if right else "start"}">{e(label)}: {area:,.4f} km²</text></g>')
    extent = f"lon {min(xs):.4f} to {max(xs):.4f}, lat {min(ys):.4f} to {max(ys):.4f} (WGS84)"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{MAP_W}" height="{MAP_H}" '
            f'viewBox="0 0 {MAP_W} {MAP_H}" role="img" aria-label="footprints of the runs">'
            f'<rect width="{MAP_W}" height="{MAP_H}" fill="#f7f9fb" stroke="#d0d7de"/>{"".join(items)}</svg>'
            f'<p class="meta">{e(extent)}; darker = more changed area; grey = failed.</p>')
