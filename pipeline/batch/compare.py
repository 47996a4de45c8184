"""``s2c-batch compare``: several comparators on one scene pair, side by side, on one cluster.

Each comparator runs the whole pipeline (:func:`~s2c_batch.pipeline.run.runner.run_change_detection`)
into ``DIR/<comparator>/`` with the same config but ``model.comparator``; the runs share
one cluster (the ``--scheduler`` given, or one LocalCluster started here). With a truth
raster each change mask is scored (:func:`~s2c_batch.pipeline.learn.score.score_rasters`),
giving the rows of the paper's Table 1 on the user's own scene. ``DIR/compare.json``
holds one object per comparator. ``DIR`` may be an ``s3://`` or ``gs://bucket/prefix``: each run goes
under ``prefix/<comparator>/`` and the table to ``prefix/compare.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rasterio.crs import CRS

from s2c_batch.kernels.comparators.registry import ComparatorName, is_comparator
from s2c_batch.kernels.comparators.registry import comparator_names as registered_names
from s2c_batch.kernels.model_config import ModelConfig, comparator_settings
from s2c_batch.pipeline.cluster.connect import connect, torch_threads_per_worker
from s2c_batch.pipeline.config import Config, check_checkpoints
from s2c_batch.pipeline.errors import ConfigError, InputError
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.learn.score import TruthValues, score_rasters
from s2c_batch.pipeline.learn.table import ComparatorRow, format_rows
from s2c_batch.pipeline.output.layout import STORE
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.runlog import read_record
from s2c_batch.pipeline.products.area import change_statistics
from s2c_batch.pipeline.run.context import RunOptions
from s2c_batch.pipeline.run.runner import run_pair

log = logging.getLogger(__name__)

#: The summary file in ``DIR``.
COMPARE_JSON = "compare.json"


def parse_comparators(text: str) -> tuple[ComparatorName, ...]:
    """``cva,pca_kmeans,irmad`` -> names, checked and without repeats.

    Raises:
        ConfigError: an empty list or an unknown name (the valid ones are listed).
    """
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    valid = comparator_names()
    unknown = [n for n in names if not is_comparator(n)]
    if unknown or not names:
        raise ConfigError(
            f"--comparators {text!r}: unknown comparator(s) {unknown}; valid ones are {list(valid)}"
            if unknown else f"--comparators {text!r} names no comparator; valid ones are {list(valid)}"
        )
    return typing.cast(tuple[ComparatorName, ...], names)


def comparator_names() -> tuple[str, ...]:
    """Every value ``model.comparator`` takes."""
    return registered_names()


def config_for(cfg: Config, comparator: ComparatorName) -> Config:
    """The run config of one comparator: ``cfg`` with ``model.comparator`` set.

    ``model.standardize`` applies to the classical comparators only; the tile models
    (``cach``, ``dcva``, the mask-level ones) take the images as their backbone expects.
    ``ucd_scm`` always thresholds by Otsu over the scene (its method). The command
    line reads its configs with :func:`~s2c_batch.pipeline.config.load_comparator_configs`,
    which applies the same rule before validating.
    """
    settings = {f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(cfg.model)}
    return dataclasses.replace(cfg, model=ModelConfig(**comparator_settings(comparator, settings)))


def comparator_configs(cfg: Config, comparators: Sequence[ComparatorName]) -> dict[ComparatorName, Config]:
    """The run config of each comparator (:func:`config_for`), in order."""
    return {name: config_for(cfg, name) for name in comparators}


@dataclass
class Comparison:
    """All rows, and what they were measured on."""

    t1: str
    t2: str
    truth: str | None
    scheduler: str
    rows: list[ComparatorRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``compare.json``)."""
        return {"t1": self.t1, "t2": self.t2, "truth": self.truth, "scheduler": self.scheduler,
                "comparators": [r.to_dict() for r in self.rows]}


def run_comparison(
    t1: str | os.PathLike[str] | Source,
    t2: str | os.PathLike[str] | Source,
    out: str | os.PathLike[str] | Location,
    configs: Mapping[ComparatorName, Config],
    *,
    truth: str | os.PathLike[str] | Source | None = None,
    truth_values: TruthValues = "auto",
    options: RunOptions | None = None,
) -> Comparison:
    """Run each comparator on the pair, score it, write ``compare.json``.

    Args:
        t1: earlier scene.
        t2: later scene.
        out: folder or ``s3://`` or ``gs://bucket/prefix``; each comparator writes ``out/<comparator>/``.
        configs: each comparator's config, in the order of the table
            (:func:`~s2c_batch.pipeline.config.load_comparator_configs`, or
            :func:`comparator_configs` of one config); the first one's ``storage`` and
            ``cluster`` serve them all.
        truth: change truth on t1's grid (0/1, 0/255 or OSCD's 1/2).
        truth_values: the truth's encoding, or ``auto``.
        options: as for every run (``None``: the defaults): ``scheduler`` (``None`` = one LocalCluster for all),
            ``resume`` or ``overwrite`` the comparators' previous runs in ``out``, ``bbox``
            (in t1's CRS), ``progress`` on stderr.

    Returns:
        The rows, also written to ``out/compare.json``.

    Raises:
        ConfigError, InputError, OutputError: as ``run`` raises them, for the first
            comparator that fails (the rows before it are in ``compare.json``); an
            ``out`` that cannot be written (a missing bucket, an unreachable endpoint)
            is an OutputError before any run.
    """
    options = options or RunOptions()
    if not configs:
        raise ConfigError("compare needs at least one comparator; give --comparators NAME,...")
    cfg = next(iter(configs.values()))
    for run_cfg in configs.values():  # a missing checkpoint stops the comparison before any run
        check_checkpoints(run_cfg)
    scenes = Source.parse(t1), Source.parse(t2)
    truth = None if truth is None else Source.parse(truth)
    if truth is not None and not truth.remote and not truth.path.is_file():
        raise InputError(f"--truth {str(truth)!r} does not exist; give the change truth raster on t1's grid")
    out_dir = open_location(out, cfg.storage)
    out_dir.ensure()
    with connect(options.scheduler, cfg.cluster) as client:
        address = str(client.scheduler_info()["address"])
        threads = torch_threads_per_worker(client) if options.scheduler is None else None
        run_options = dataclasses.replace(options, scheduler=address, torch_threads=threads)
        result = Comparison(str(t1), str(t2), str(truth) if truth else None, address)
        for name, run_cfg in configs.items():
            if options.progress:
                print(f"s2c-batch compare: {name}", file=sys.stderr)
            t0 = time.perf_counter()
            run_out = out_dir.child(name)
            run = run_pair(*scenes, run_out, run_cfg, run_options)
            seconds = time.perf_counter() - t0
            record = read_record(run_out) or {}
            stats = change_statistics(client, run_out.child(STORE), _grid_of(record),
                                      block=run_cfg.tiling.block_size, retries=run_cfg.cluster.retries)
            row = ComparatorRow(comparator=name, out=str(run.out), seconds=round(seconds, 3),
                                changed_pixels=stats.changed_pixels, valid_pixels=stats.valid_pixels,
                                threshold=record.get("threshold"), unknown_pct=round(stats.unknown_pct, 4))
            if truth is not None:
                mask = run.products.get("change_mask.tif") or str(run_out.href("change_mask.tif"))
                m = score_rasters(mask, truth, truth_values=truth_values, storage=run_cfg.storage).metrics
                row.f1, row.iou, row.kappa = _num(m.f1), _num(m.iou), _num(m.kappa)
                row.precision, row.recall, row.oa = _num(m.precision), _num(m.recall), _num(m.oa)
            result.rows.append(row)
            _write(out_dir, result)
    return result


def _num(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # NaN -> None


def _grid_of(record: Mapping[str, Any]) -> Grid:
    """The output grid a finished run recorded in its ``run.json``."""
    g = record["grid"]
    return Grid(CRS.from_user_input(g["crs"]).to_wkt(), tuple(g["transform"])[:6], g["height"], g["width"])


def _write(out_dir: Location, result: Comparison) -> None:
    out_dir.save(COMPARE_JSON, json.dumps(result.to_dict(), indent=2).encode())


def format_comparison(result: Comparison) -> str:
    """The table printed by ``s2c-batch compare`` (metrics in %, as in the paper)."""
    return format_rows(result.rows, scored=result.truth is not None)
