"""``s2c-batch series`` as a Python function: N dates of one place, night after night.

What one night does, in order (:func:`execute_series`):

1. order the dates by acquisition time (:mod:`~s2c_batch.pipeline.series.dates`) and
   plan the pairs: each date with the one before (``series.against: previous``) or with
   the first (``first``); each pair's run lives in ``pairs/<t1 label>_<t2 label>/``;
2. decide every pair from what its folder holds, exactly as ``batch`` decides a run
   (:func:`~s2c_batch.pipeline.run.recovery.decide_mode`): a complete pair of the same
   fingerprint is reused (its products are there, its ``run.json`` says ``complete``), a
   partial one is resumed from its verified blocks, a missing one is computed, one made
   from other inputs or config is refused unless ``overwrite``. Every pair's scenes are
   opened and checked to share the series' grid before anything is written;
3. hold the series folder (``.s2c/lock``) and run the pairs that are not reused, one
   after the other on the cluster, as ``run`` does; a pair that fails stops the night;
4. make the series products from every pair's mask (:mod:`~s2c_batch.pipeline.series.products`),
   the STAC collection (:mod:`~s2c_batch.pipeline.series.collection`), ``series.json``
   and the night's report (``report.html``; :mod:`~s2c_batch.pipeline.products.report`).

So the next night, given one more date, computes one pair and the series products.
Layout of the series folder (or prefix)::

    pairs/<t1>_<t2>/        a run's products (change.zarr, COGs, run.json, stac-item.json, ...)
    series.zarr             first_change, change_count, persistent_change
    first_change.tif ...    their COGs
    collection.json         STAC collection: one item per pair, the series products as assets
    series.json             dates (the lookup table of first_change), pairs, summary, status
    report.html             the night's report
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from s2c_batch.pipeline.cluster.connect import connect, torch_threads_per_worker
from s2c_batch.pipeline.cluster.signals import sigterm_as_interrupt
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import OutputExistsError, S2CError, SceneMismatchError
from s2c_batch.pipeline.inputs.scene import Grid, ScenePair
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output import lock
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.runlog import Timings, read_record
from s2c_batch.pipeline.products.report import check_report_file
from s2c_batch.pipeline.run.context import RunOptions
from s2c_batch.pipeline.run.fingerprint import hash_path, package_version
from s2c_batch.pipeline.run.recovery import Mode, decide_mode
from s2c_batch.pipeline.run.runner import run_pair
from s2c_batch.pipeline.series.collection import COLLECTION_FILE, write_collection
from s2c_batch.pipeline.series.dates import SeriesDate, SeriesPair, check_date_masks, order_dates, plan_pairs
from s2c_batch.pipeline.series.products import SeriesStats, write_series_products
from s2c_batch.pipeline.series.record import (
    REPORT_FILE,
    SERIES_JSON,
    PairOutcome,
    SeriesResult,
    SeriesSpec,
    save_record,
)
from s2c_batch.pipeline.series.report import series_report_parts, write_series_report

log = logging.getLogger(__name__)

def run_series(
    dates: Sequence[str | os.PathLike[str] | Source],
    out: str | os.PathLike[str] | Location,
    cfg: Config,
    *,
    name: str | None = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    night_report: str | os.PathLike[str] | None = None,
) -> SeriesResult:
    """Run a series of dates of one place: its pairs (reusing the finished ones) and its products.

    Args:
        dates: the acquisitions (paths, URLs, STAC Items), in any order.
        out: the series folder, or an ``s3://`` / ``gs://`` prefix.
        cfg: resolved config (``series.against``, ``series.persistence`` and every pair's settings).
        name: the series' name; default the folder's.
        scheduler: a running Dask scheduler; ``None`` = a LocalCluster.
        overwrite: replace pairs made from other inputs or config.
        progress: one line per pair on stderr.
        night_report: also write the night's report to this local file (it is always written
            into the series folder).

    Returns:
        The night's result (also in ``out/series.json``).

    Raises:
        ConfigError: fewer than 2 dates, a date given twice, an unreachable scheduler (exit 2).
        InputError: an unusable date, dates on different grids, times missing on some dates (exit 3).
        OutputError: a pair of other inputs or config without ``overwrite``, a locked or
            unwritable folder, a ``night_report`` whose folder is missing (exit 4). A pair
            that fails raises its own error after the series' record and report say so.
    """
    check_report_file(night_report, option="--night-report")
    location = open_location(out, cfg.storage)
    spec = SeriesSpec(name or location.name, tuple(Source.parse(d) for d in dates), location, cfg, overwrite)
    plan = plan_series(spec)  # bad dates, grids or pairs: refused before a cluster starts or a file is written
    with connect(scheduler, cfg.cluster, numpy_only=not cfg.model.uses_torch) as client:
        address = str(client.scheduler_info()["address"])
        if progress:
            print(f"s2c-batch: series {spec.name} on {address}; dashboard {client.dashboard_link}", file=sys.stderr)
        threads = torch_threads_per_worker(client) if scheduler is None else None
        with client.as_current(), sigterm_as_interrupt():
            result = execute_series(spec, client, address, progress=progress, torch_threads=threads,
                                    night_report=night_report, plan=plan)
    if result.exception is not None:
        raise result.exception
    return result


@dataclass(frozen=True)
class SeriesPlan:
    """A series checked and decided, before anything is written.

    Attributes:
        dates: the dates in order.
        pairs: the pairs in order.
        modes: what each pair does (skip, resume, fresh, overwrite).
        grid: the grid every pair shares.
    """

    dates: tuple[SeriesDate, ...]
    pairs: tuple[SeriesPair, ...]
    modes: tuple[Mode, ...]
    grid: Grid


def plan_series(spec: SeriesSpec, hasher: Callable[[str], str] | None = None) -> SeriesPlan:
    """Order the dates, plan the pairs, decide each from its folder, check they share one grid.

    Raises:
        ConfigError: too few or too many dates, a date given twice, masks named for every
            date at once (exit 2).
        InputError: an unusable date, times on some dates only, a pair off the series' grid (exit 3).
        OutputError: the folder holds a run rather than a series, or a pair of other inputs or
            config and no ``overwrite`` (exit 4).
    """
    check_date_masks(spec.dates, spec.cfg.input)
    out = spec.out.resolve()
    if lock.has_run(out):
        raise OutputExistsError(f"series {spec.name!r}: --out {out.url!r} holds a run of 's2c-batch run', not a "
                                "series; give the series a folder of its own")
    hasher = hasher or functools.lru_cache(maxsize=None)(hash_path)
    dates = order_dates(spec.dates, spec.cfg.storage)
    pairs = plan_pairs(dates, spec.cfg.series.against)
    decided = [_decide(spec, out, p, hasher) for p in pairs]
    grid = _common_grid(spec, pairs, [scene for _, scene in decided])
    return SeriesPlan(dates, pairs, tuple(mode for mode, _ in decided), grid)


def execute_series(spec: SeriesSpec, client: Any, address: str, *, progress: bool = False,
                   torch_threads: int | None = None, hasher: Callable[[str], str] | None = None,
                   night_report: str | os.PathLike[str] | None = None, plan: SeriesPlan | None = None) -> SeriesResult:
    """One night of a series on a connected cluster (what ``series`` and ``batch`` call).

    Errors found before anything is written (dates, grids, a pair of another fingerprint)
    are raised; a pair that fails later is recorded in the result (``exception``), in
    ``series.json`` and in the report, and stops the night. Ctrl-C stops it as failed and
    is raised again.

    Args:
        spec: the series.
        client: the cluster's ``distributed.Client``.
        address: its scheduler's address (the pairs' runs connect to it).
        progress: one line per pair on stderr.
        torch_threads: torch threads of CPU workers (see ``run``).
        hasher: hashes checkpoint paths (a batch shares its cache).
        night_report: also write the report to this local file.
        plan: what :func:`plan_series` decided (``None``: plan now).

    Returns:
        The night's result.

    Raises:
        As :func:`plan_series`, before anything is written; KeyboardInterrupt.
    """
    t0, timings = time.perf_counter(), Timings()
    cfg, out = spec.cfg, spec.out.resolve()
    result = SeriesResult(spec.name, out.url, location=out)
    with timings.stage("open"):
        plan = plan or plan_series(spec, hasher)
    dates, pairs, grid = plan.dates, plan.pairs, plan.grid
    result.dates = dates
    result.pairs = [PairOutcome(p, out.child(p.key), mode=mode) for p, mode in zip(pairs, plan.modes, strict=True)]
    out.prepare(resume=False, overwrite=False)  # the folder (and .s2c/), or a probe of the prefix
    record: dict[str, Any] = {
        "name": spec.name, "status": "running", "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": package_version(), "persistence": cfg.series.persistence, "against": cfg.series.against,
        "dates": [d.to_json() for d in dates], "grid": _grid_json(grid), "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
    }
    with lock.locked(out):
        save_record(out, record, result)
        try:
            with timings.stage("pairs"):
                for outcome in result.pairs:  # one after the other: a failed pair stops the night
                    _run_one(outcome, outcome.mode, cfg, address, progress, torch_threads)
                    if outcome.exception is not None:
                        raise outcome.exception
            token = uuid.uuid4().hex[:8]
            with timings.stage("series_products"):
                written, stats = write_series_products(
                    client, out, grid, pairs, dates, cfg, token=token,
                    attrs={"s2c_batch_version": package_version(), "config_hash": cfg.hash(), "series": spec.name,
                           "pairs": [p.name for p in pairs]})
                _pair_areas(result.pairs, stats)
                result.summary = stats.summary(dates)
            with timings.stage("collection"):
                written[COLLECTION_FILE] = write_collection(
                    out, spec.name, grid, dates, pairs, {**written, SERIES_JSON: SERIES_JSON, REPORT_FILE: REPORT_FILE},
                    properties={"s2c:dates": [d.to_json() for d in dates], "s2c:persistence": cfg.series.persistence,
                                "s2c:against": cfg.series.against, "s2c:summary": result.summary})
            result.products = written
            result.status = "complete"
        except KeyboardInterrupt as exc:
            result.status, result.exception = "interrupted", exc
        except Exception as exc:  # a failed pair (recorded on it) or a failed series product
            if not isinstance(exc, S2CError) and not any(p.exception is exc for p in result.pairs):
                log.exception("series %s failed", spec.name)
            result.status, result.exception = "failed", exc
        finally:
            timings.total()
            result.duration_s = time.perf_counter() - t0
            record.update(timings_s=timings.rounded())
            try:  # the night's report never hides how the night went
                result.report = write_series_report(out, result, night_report)
            except Exception as exc:
                log.warning("series %s: the night's report was not written: %s", spec.name, exc)
            save_record(out, record, result, quietly=result.status != "complete")
    if progress:
        print(f"s2c-batch: series {spec.name}: {result.status}; {len(result.computed)} pair(s) computed "
              f"[{result.duration_s:.1f} s]", file=sys.stderr)
    if isinstance(result.exception, KeyboardInterrupt):
        raise result.exception
    return result


def _decide(spec: SeriesSpec, out: Location, pair: SeriesPair,
            hasher: Callable[[str], str]) -> tuple[Mode, ScenePair]:
    return decide_mode(pair.t1.source, pair.t2.source, out.child(pair.key), spec.cfg,
                       who=f"pair {pair.name!r} of series {spec.name!r}", overwrite=spec.overwrite, hasher=hasher,
                       fix="pass --overwrite (or 'overwrite: true' on the series in the runs file) to replace it")


def _common_grid(spec: SeriesSpec, pairs: Sequence[SeriesPair], scenes: Sequence[ScenePair]) -> Grid:
    """The grid every pair shares (the first date's); a pair on another grid is refused.

    Raises:
        SceneMismatchError: a pair's grid differs (exit 3).
    """
    grid = scenes[0].grid
    for pair, scene in zip(pairs, scenes, strict=True):
        g = scene.grid
        if g.crs != grid.crs or g.shape != grid.shape or not g.affine.almost_equals(grid.affine, precision=1e-9):
            raise SceneMismatchError(
                f"series {spec.name!r}: date {pair.t1.source.redacted!r} is not on the grid of the first date "
                f"{pairs[0].t1.source.redacted!r} ({g.shape} vs {grid.shape}); the series products need one grid: "
                "co-register the dates onto the first date's grid (gdalwarp), or pass --against first "
                "(series.against: first) with input.align: reproject, which warps every date onto the first's"
            )
    return grid


def _run_one(outcome: PairOutcome, mode: Mode | None, cfg: Config, address: str, progress: bool,
             torch_threads: int | None) -> None:
    """Run (or reuse) one pair, recording how it went on ``outcome``; KeyboardInterrupt propagates."""
    t0 = time.perf_counter()
    pair = outcome.pair
    try:
        if mode == "skip":
            outcome.status = "skipped"
            outcome.record = read_record(outcome.out) or {}
            outcome.products = dict(outcome.record.get("products") or {})
        else:
            if progress:
                print(f"s2c-batch: pair {pair.name}: {mode}", file=sys.stderr)
            options = RunOptions(scheduler=address, resume=mode == "resume", overwrite=mode == "overwrite",
                                 progress=False, torch_threads=torch_threads)
            done = run_pair(pair.t1.source, pair.t2.source, outcome.out, cfg, options)
            outcome.status, outcome.products = "complete", dict(done.products)
            outcome.record = read_record(outcome.out) or {}
    except KeyboardInterrupt:
        outcome.status, outcome.exit_code, outcome.error = "interrupted", 130, "interrupted"
        outcome.error_type = "KeyboardInterrupt"
        raise
    except Exception as exc:  # the night stops, recorded; S2CErrors keep their exit code
        if not isinstance(exc, S2CError):
            log.exception("pair %s failed", pair.name)
        outcome.status, outcome.exit_code = "failed", int(getattr(exc, "exit_code", 1))
        outcome.error, outcome.error_type, outcome.exception = str(exc), type(exc).__name__, exc
    finally:
        outcome.duration_s = time.perf_counter() - t0
    if progress:
        print(f"s2c-batch: pair {pair.name}: {outcome.status} [{outcome.duration_s:.1f} s]", file=sys.stderr)


def _pair_areas(outcomes: Sequence[PairOutcome], stats: SeriesStats) -> None:
    for j, outcome in enumerate(outcomes):
        outcome.changed_area_km2 = float(stats.pair_changed_area[j]) / 1e6
        outcome.unknown_area_km2 = float(stats.pair_unknown_area[j]) / 1e6


def _grid_json(grid: Grid) -> dict[str, Any]:
    return {"crs": grid.crs.to_string(), "transform": list(grid.transform), "height": grid.height,
            "width": grid.width}


__all__ = ["PairOutcome", "SeriesPlan", "SeriesResult", "SeriesSpec", "execute_series", "plan_series", "run_series",
           "series_report_parts"]
