"""``s2c-batch eval --comparators``: several comparators scored on one dataset, side by side.

Each comparator runs with its own config (:func:`~s2c_batch.pipeline.config.load_comparator_configs`:
the settings that apply to some comparators only kept where they apply, as ``compare``
does) through :func:`~s2c_batch.pipeline.learn.evaluate.evaluate_dataset`; the rows are
those of ``compare`` (:class:`~s2c_batch.pipeline.learn.table.ComparatorRow`, metrics as
fractions in the JSON, in % in the printed table), with the paper's figures of each
row's method beside them when ``paper`` names one of its datasets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import Config, check_checkpoints
from s2c_batch.pipeline.errors import ConfigError, OutputError
from s2c_batch.pipeline.learn.evaluate import EvalResult, evaluate_dataset
from s2c_batch.pipeline.learn.paper import format_paper, load_paper_table, paper_block
from s2c_batch.pipeline.learn.predictions import FitScope
from s2c_batch.pipeline.learn.table import ComparatorRow, format_rows


@dataclass
class EvalTable:
    """The rows of one dataset, and what they were measured on.

    Attributes:
        dataset: the dataset folder.
        pairs: pairs scored.
        fit: whom the fitted comparators and Otsu were fitted to (``pair`` or ``dataset``).
        rows: one per comparator, in order.
        paper: the paper's figures on the dataset (:func:`~s2c_batch.pipeline.learn.paper.paper_block`), or ``None``.
    """

    dataset: str
    pairs: int
    fit: str
    rows: list[ComparatorRow] = field(default_factory=list)
    paper: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``): ``comparators`` holds ``compare.json``'s rows."""
        out: dict[str, Any] = {"dataset": self.dataset, "pairs": self.pairs, "fit": self.fit,
                               "comparators": [r.to_dict() for r in self.rows]}
        if self.paper is not None:
            out["paper"] = self.paper
        return out


def row_of(result: EvalResult, paper: Mapping[str, Any] | None = None) -> ComparatorRow:
    """A table row of one comparator's result (and the paper's figures of its method)."""
    m, model = result.metrics, result.model
    sem = result.semantic
    return ComparatorRow(
        comparator=str(model["comparator"]), out=None, seconds=round(result.seconds, 3),
        changed_pixels=m.tp + m.fp, valid_pixels=m.n, threshold=model.get("threshold"),
        f1=_num(m.f1), iou=_num(m.iou), kappa=_num(m.kappa), precision=_num(m.precision), recall=_num(m.recall),
        oa=_num(m.oa),
        semantic=None if sem is None else {"mf1": _num(sem.mf1), "miou": _num(sem.miou), "moa": _num(sem.moa),
                                           "mkappa": _num(sem.mkappa)},
        paper=dict(paper) if paper is not None else None,
    )


def _num(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # NaN -> None


def evaluate_comparators(
    dataset: str | os.PathLike[str],
    configs: Mapping[str, Config],
    *,
    fit: FitScope = "pair",
    targets: Sequence[str] = (),
    semantic_classes: Mapping[int, Sequence[str]] | None = None,
    preset: str | None = None,
    paper: str | None = None,
    progress: bool = False,
) -> EvalTable:
    """Score each comparator on the dataset.

    Args:
        dataset: a DATASET folder (``A/``, ``B/``, ``label/``).
        configs: each comparator's config, in the order of the table.
        fit: fitted comparators and Otsu fitted to each ``pair`` or to the ``dataset``.
        targets: target class names, replacing ``model.targets``.
        semantic_classes: dataset class id -> vocabulary names (semantic scores).
        preset: a semantic dataset's preset.
        paper: one of the paper's datasets (``levir_cd``, ...): its figures beside ours.
        progress: progress bars on stderr.

    Raises:
        ConfigError, CheckpointError, InputError: as :func:`evaluate_dataset`; a missing
            checkpoint or an unknown ``paper`` before any comparator runs.
    """
    if not configs:
        raise ConfigError("eval --comparators names no comparator; give --comparators NAME,...")
    for cfg in configs.values():
        check_checkpoints(cfg)
    figures = load_paper_table() if paper is not None else None
    block = paper_block(figures, paper) if figures is not None and paper is not None else None
    table: EvalTable | None = None
    for cfg in configs.values():
        result = evaluate_dataset(dataset, cfg, targets=targets, semantic_classes=semantic_classes, preset=preset,
                                  fit=fit, progress=progress)
        mine = figures.match(paper, cfg) if figures is not None and paper is not None else None
        if table is None:
            table = EvalTable(str(result.dataset), result.pairs, fit, paper=block)
        table.rows.append(row_of(result, mine.to_dict() if mine is not None else None))
    assert table is not None
    return table


def format_eval_comparison(table: EvalTable) -> str:
    """The printed table: the dataset, one row per comparator (in %), and the paper's rows with ``--paper``."""
    scope = "each pair" if table.fit == "pair" else "the whole dataset"
    text = [f"dataset: {table.dataset} ({table.pairs} pairs); fitted comparators and Otsu fitted to {scope}",
            format_rows(table.rows, scored=True, paper=any(r.paper is not None for r in table.rows),
                        paper_semantic=table.paper is not None and table.paper["metrics"] == "semantic")]
    if table.paper is not None:
        text.append(format_paper(table.paper))
    return "\n".join(text)


def write_table(table: EvalTable, path: str | os.PathLike[str]) -> Path:
    """Write :meth:`EvalTable.to_dict` as JSON.

    Raises:
        OutputError: the file cannot be written (exit code 4).
    """
    out = Path(path)
    try:
        out.write_text(json.dumps(table.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write --json {str(out)!r}: {exc}; choose a writable path") from exc
    return out
