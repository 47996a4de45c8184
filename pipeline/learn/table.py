"""Comparators side by side: the rows ``s2c-batch compare`` and ``eval --comparators`` print and write."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class ComparatorRow:
    """One comparator's outcome (one object of ``compare.json``, or of ``eval --comparators``'s table).

    Attributes:
        comparator: the ``model.comparator``.
        out: where its products are (``None`` for ``eval``, which writes none).
        seconds: wall time.
        changed_pixels: pixels of the change mask (valid ones).
        valid_pixels: pixels scored or written.
        threshold: the threshold as the run or ``eval`` records it.
        f1: F1^c (with a truth or labels), as a fraction.
        iou: IoU^c.
        kappa: Kappa.
        precision: precision of the changed class.
        recall: recall of the changed class.
        oa: overall accuracy.
        unknown_pct: ``compare``: the share of the ground area a date did not observe, in %.
        semantic: ``eval`` with semantic classes: ``mf1``, ``miou``, ``moa``, ``mkappa``.
        paper: ``eval --paper``: the paper's figures (in %) of the method this row runs.
    """

    comparator: str
    out: str | None
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
    unknown_pct: float | None = None
    semantic: dict[str, float | None] | None = None
    paper: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``unknown_pct``, ``semantic`` and ``paper`` only where they are set)."""
        out = dataclasses.asdict(self)
        for key in ("unknown_pct", "semantic", "paper"):
            if out[key] is None:
                del out[key]
        return out


def format_rows(rows: Sequence[ComparatorRow], *, scored: bool, paper: bool = False,
                paper_semantic: bool = False) -> str:
    """The table of ``compare`` and ``eval --comparators`` (metrics in %, as in the paper).

    Args:
        rows: one per comparator, in order.
        scored: the rows have metrics (a truth, or a dataset's labels).
        paper: add the paper's figures of each row's method (``-`` where it has none).
        paper_semantic: those figures are Table 2's means over the classes (mF1^c, mIoU^c), to be
            read beside our mF1^c and mIoU^c, not our binary F1^c.
    """
    semantic = any(r.semantic is not None for r in rows)
    head = ["comparator", "F1^c", "IoU^c", "Kappa", "Prec", "Rec", "OA"] if scored else ["comparator"]
    head += ["mF1^c", "mIoU^c"] if semantic else []
    names = ("mF1^c", "mIoU^c") if paper_semantic else ("F1^c", "IoU^c")
    head += [f"paper {names[0]}", f"paper {names[1]}", "paper Kappa", "paper method"] if paper else []
    head += ["changed px", "threshold", "seconds"]
    lines_of = []
    for r in rows:
        cells = [r.comparator]
        if scored:
            cells += [_pct(v) for v in (r.f1, r.iou, r.kappa, r.precision, r.recall, r.oa)]
        if semantic:
            cells += [_pct((r.semantic or {}).get(k)) for k in ("mf1", "miou")]
        if paper:
            fig = r.paper or {}
            cells += [_fig(fig.get(k)) for k in ("f1", "iou", "kappa")] + [str(fig.get("method", "-"))]
        cells += [str(r.changed_pixels), describe_threshold(r.threshold), f"{r.seconds:.1f}"]
        lines_of.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in lines_of)) if lines_of else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines_of]
    return "\n".join(line.rstrip() for line in lines)


def describe_threshold(threshold: Any) -> str:
    """A recorded threshold in a few words: ``0.5``, ``otsu 80 (p >= 0.315)``, ``otsu per pair 61-97``.

    Example:
        >>> describe_threshold({"method": "otsu", "fit": "pair", "levels": {"a": 97, "b": 61}})
        'otsu per pair 61-97'
    """
    if not isinstance(threshold, Mapping):
        return str(threshold)
    if "levels" in threshold:
        found = sorted(threshold["levels"].values())
        if not found:
            return "otsu per pair"
        return f"otsu per pair {found[0]}" + (f"-{found[-1]}" if found[-1] != found[0] else "")
    return f"otsu {threshold.get('level')} (p >= {float(threshold.get('value', 0.0)):.3f})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _fig(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
