"""The Seg2Change paper's own figures (Tables 1 and 2), to print beside ``eval``'s.

The figures live in a data file, ``configs/paper/seg2change.yaml``, which says where each
number comes from. Each method names the comparator and the settings of ours that
reproduce it (``comparator: null`` for a system we do not ship); :func:`PaperTable.match`
finds the method of a config by comparing them with the config's values, so nothing here
knows a comparator by name. The comparators the file names are checked against the
registry when it is read.

Example:
    >>> table = load_paper_table()
    >>> [m.method for m in table.rows("levir_cd")][-1], table.rows("levir_cd")[-1].f1
    ('Seg2Change', 78.72)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s2c_batch.kernels.comparators.registry import is_comparator
from s2c_batch.pipeline.config import Config, configs_dir
from s2c_batch.pipeline.errors import ConfigError

#: The data file, under the packaged configs.
PAPER_FILE = Path("paper") / "seg2change.yaml"


@dataclass(frozen=True)
class PaperDataset:
    """One of the paper's datasets.

    Attributes:
        key: the name ``--paper`` takes (``levir_cd``).
        name: as the paper writes it (``LEVIR-CD``).
        table: the paper's table (``Table 1``).
        metrics: ``binary`` (F1^c, IoU^c, Kappa) or ``semantic`` (mF1^c, mIoU^c).
    """

    key: str
    name: str
    table: str
    metrics: str


@dataclass(frozen=True)
class PaperFigures:
    """One method's figures on one dataset, in % (``None``: not reported or not transcribed).

    Attributes:
        method: the paper's name of the method.
        f1: F1^c (mF1^c for a semantic dataset).
        iou: IoU^c (mIoU^c).
        kappa: Kappa.
        source: the key of where the numbers come from (:attr:`PaperTable.sources`).
        note: what the method ran on.
    """

    method: str
    f1: float | None
    iou: float | None
    kappa: float | None
    source: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"method": self.method, "f1": self.f1, "iou": self.iou, "kappa": self.kappa, "source": self.source,
                "note": self.note}


@dataclass(frozen=True)
class PaperMethod:
    """A row of the paper's tables.

    Attributes:
        method: the paper's name.
        comparator: our ``model.comparator`` that reproduces it, or ``None``.
        settings: ``SECTION.KEY`` -> value our config must have besides the comparator.
        note: what it ran on.
        figures: dataset key -> ``{f1, iou, kappa, source}``.
    """

    method: str
    comparator: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    figures: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def matches(self, cfg: Config) -> bool:
        """Whether ``cfg`` runs this method: its comparator and every one of its settings."""
        if self.comparator is None or self.comparator != cfg.model.comparator:
            return False
        values = cfg.to_dict()
        return all(values.get(k.split(".", 1)[0], {}).get(k.split(".", 1)[1]) == v for k, v in self.settings.items())


@dataclass(frozen=True)
class PaperTable:
    """The paper's datasets and methods, and the sources of their figures.

    Attributes:
        datasets: by key, in the file's order.
        methods: in the file's order.
        sources: source key -> what it is.
    """

    datasets: Mapping[str, PaperDataset]
    methods: tuple[PaperMethod, ...]
    sources: Mapping[str, str]

    def dataset(self, key: str) -> PaperDataset:
        """The dataset ``key``.

        Raises:
            ConfigError: an unknown key, listing the valid ones.
        """
        if key not in self.datasets:
            raise ConfigError(f"--paper {key!r} is none of the paper's datasets; choose one of {list(self.datasets)}")
        return self.datasets[key]

    def figures(self, method: PaperMethod, key: str) -> PaperFigures | None:
        """``method``'s figures on the dataset ``key``, or ``None`` when the file has none."""
        found = method.figures.get(key)
        if found is None:
            return None
        return PaperFigures(method.method, _num(found.get("f1")), _num(found.get("iou")), _num(found.get("kappa")),
                            str(found.get("source", "")), method.note)

    def rows(self, key: str) -> list[PaperFigures]:
        """Every method's figures on the dataset ``key``, in the file's order.

        Raises:
            ConfigError: an unknown dataset.
        """
        self.dataset(key)
        return [f for m in self.methods if (f := self.figures(m, key)) is not None]

    def match(self, key: str, cfg: Config) -> PaperFigures | None:
        """The figures on ``key`` of the paper's method that ``cfg`` runs, or ``None``."""
        self.dataset(key)
        return next((f for m in self.methods if m.matches(cfg) and (f := self.figures(m, key)) is not None), None)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def load_paper_table(path: str | Path | None = None) -> PaperTable:
    """Read the paper's figures (``configs/paper/seg2change.yaml`` unless ``path``).

    Raises:
        ConfigError: the file is missing or malformed, or names a comparator that is not registered.
    """
    file = Path(path) if path is not None else configs_dir() / PAPER_FILE
    try:
        doc = yaml.safe_load(file.read_text())
        datasets = {k: PaperDataset(k, str(v["name"]), str(v["table"]), str(v["metrics"]))
                    for k, v in doc["datasets"].items()}
        methods = tuple(PaperMethod(str(m["method"]), m.get("comparator"), dict(m.get("settings") or {}),
                                    str(m.get("note", "")), dict(m.get("figures") or {})) for m in doc["methods"])
        sources = {str(k): str(v) for k, v in (doc.get("sources") or {}).items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"the paper's figures {str(file)!r} cannot be read ({exc!r}); restore the packaged file") \
            from exc
    for m in methods:
        if m.comparator is not None and not is_comparator(m.comparator):
            raise ConfigError(f"{str(file)!r}: method {m.method!r} names comparator {m.comparator!r}, which is not "
                              "registered")
        unknown = sorted(set(m.figures) - set(datasets))
        if unknown:
            raise ConfigError(f"{str(file)!r}: method {m.method!r} has figures of unknown datasets {unknown}")
        cited = {str(f.get("source")) for f in m.figures.values()} - set(sources)
        if cited:
            raise ConfigError(f"{str(file)!r}: method {m.method!r} cites sources {sorted(cited)} that the file does "
                              "not list under sources")
    return PaperTable(datasets, methods, sources)


def paper_block(table: PaperTable, key: str, cfg: Config | None = None) -> dict[str, Any]:
    """The paper's figures on the dataset ``key``, JSON-ready, with the method ``cfg`` runs (if any).

    Raises:
        ConfigError: an unknown dataset.
    """
    data = table.dataset(key)
    rows = table.rows(key)
    block: dict[str, Any] = {"dataset": key, "name": data.name, "table": data.table, "metrics": data.metrics,
                             "methods": [r.to_dict() for r in rows],
                             "sources": {k: v for k, v in table.sources.items() if any(r.source == k for r in rows)}}
    if cfg is not None:
        mine = table.match(key, cfg)
        block["this_config"] = mine.to_dict() if mine is not None else None
    return block


def format_paper(block: Mapping[str, Any]) -> str:
    """:func:`paper_block` as text: the paper's rows on the dataset, their sources."""
    semantic = block["metrics"] == "semantic"
    names = ("mF1^c", "mIoU^c", "Kappa") if semantic else ("F1^c", "IoU^c", "Kappa")
    rows = block["methods"]
    width = max([len("method"), *(len(r["method"]) for r in rows)])
    lines = [f"the paper, {block['table']} on {block['name']} (in %):",
             f"{'method':<{width}}  {names[0]:>7}  {names[1]:>7}  {names[2]:>7}  source"]
    for r in rows:
        cells = "  ".join(f"{'-' if r[k] is None else f'{r[k]:.2f}':>7}" for k in ("f1", "iou", "kappa"))
        lines.append(f"{r['method']:<{width}}  {cells}  {r['source']}")
    if not rows:
        lines.append("(no figures of this dataset are transcribed in configs/paper/seg2change.yaml)")
    lines += [f"  {k}: {v}" for k, v in block["sources"].items()]
    return "\n".join(lines)
