"""Comparators side by side: the rows ``s2c-batch compare`` and ``eval --comparators`` print and write."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class ComparatorRow:
    """One comparator's outcome (one object of ``compare.json``)."""

    comparator: str
    out: str
    seconds: float
    changed_pixels: int
    valid_pixels: int
    threshold: Any
    f1: float | None = None
    iou: float | None = None
    kappa: float | None = None
    precision: float | None = None
    recall: float | None = None
    oa: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


def format_rows(rows: Sequence[ComparatorRow], *, scored: bool) -> str:
    """The table of ``compare`` and ``eval --comparators`` (metrics in %, as in the paper).

    Args:
        rows: one per comparator, in order.
        scored: the rows have metrics (a truth, or a dataset's labels).
    """
    head = ["comparator", "F1^c", "IoU^c", "Kappa", "Prec", "Rec", "OA"] if scored else ["comparator"]
    head += ["changed px", "threshold", "seconds"]
    lines_of = []
    for r in rows:
        cells = [r.comparator]
        if scored:
            cells += [_pct(v) for v in (r.f1, r.iou, r.kappa, r.precision, r.recall, r.oa)]
        thr = r.threshold.get("value") if isinstance(r.threshold, dict) else r.threshold
        cells += [str(r.changed_pixels), f"{thr}" + (" (otsu)" if isinstance(r.threshold, dict) else ""),
                  f"{r.seconds:.1f}"]
        lines_of.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in lines_of)) if lines_of else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines_of]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
