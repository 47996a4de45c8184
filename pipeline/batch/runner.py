"""``s2c-batch batch RUNS.yaml``: many scene pairs on one cluster, overlapping, resumable.

All runs share one Dask cluster: the ``--scheduler`` given, or one LocalCluster
started here (sized by the ``cluster`` section of ``defaults`` in RUNS.yaml).
Up to ``max_concurrent`` runs go at once, each in its own thread calling
:func:`~s2c_batch.pipeline.run.runner.run_change_detection` with the cluster's address,
so the blocks of the next run are queued on the scheduler while the previous one
writes its COGs and derived products: the workers (GPUs) never wait between runs.

Each run decides for itself from its ``out/run.json`` (see :func:`decide`); ``out`` is a
folder or an ``s3://`` or ``gs://`` prefix (:class:`~s2c_batch.pipeline.output.location.Location`), decided alike:

- no ``run.json``: a fresh run;
- same fingerprint (inputs, config, checkpoints, version), ``complete`` and every
  product it lists still there: skipped;
- same fingerprint, not complete (``running`` after a crash, ``failed``, a product
  gone; or no ``run.json`` but a store carrying the fingerprint): resumed, reusing
  the blocks it wrote that still verify (:mod:`~s2c_batch.pipeline.run.recovery`);
- another fingerprint: refused (exit 4) unless the run says ``overwrite: true``.

So re-running the same file after a partial night finishes only what is missing.
A ``series:`` entry runs as ``s2c-batch series`` does, in one of the batch's slots
(its pairs one after the other), and reuses its finished pairs the same way.

Every batch also writes the night's report, one self-contained HTML page
(:mod:`~s2c_batch.pipeline.products.report`), beside the summary by default.
One run failing never stops the others. Exit code of the batch: 0 when every run
is complete or skipped; 1 when any run failed (each run's own exit code, 2 config,
3 input, 4 output, 1 other, is in the summary); 130 when interrupted (Ctrl-C or
SIGTERM: running runs are stopped, their ``run.json`` says ``failed``, and the
next batch resumes them). A broken RUNS.yaml is exit 2 before anything starts, and
an object-storage out that cannot be written (a missing bucket, refused credentials, an
unreachable endpoint) exit 4, also before anything starts.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.batch.runs_file import RunsFile, RunSpec
from s2c_batch.pipeline.cluster.connect import connect, torch_threads_per_worker
from s2c_batch.pipeline.cluster.report import check_report_path, performance_report_to
from s2c_batch.pipeline.cluster.signals import sigterm_as_interrupt
from s2c_batch.pipeline.errors import ConfigError, OutputError, S2CError
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.layout import STORE
from s2c_batch.pipeline.output.runlog import read_record
from s2c_batch.pipeline.products.area import ChangeStats, change_statistics
from s2c_batch.pipeline.products.report import ReportRun, check_report_file, report_run, write_report
from s2c_batch.pipeline.run.context import RunOptions
from s2c_batch.pipeline.run.fingerprint import hash_path
from s2c_batch.pipeline.run.recovery import Mode, decide_mode
from s2c_batch.pipeline.run.runner import run_pair
from s2c_batch.pipeline.series.runner import SeriesResult, SeriesSpec, execute_series, series_report_parts

log = logging.getLogger(__name__)

Status = Literal["complete", "skipped", "failed", "interrupted", "not_started"]

#: Exit code of a batch in which at least one run failed.
EXIT_RUN_FAILED = 1
#: Exit code of an interrupted batch (and of an interrupted run).
EXIT_INTERRUPTED = 130


@dataclass
class RunOutcome:
    """How one run of the batch ended (one entry of the summary)."""

    name: str
    t1: str
    t2: str
    out: str
    status: Status = "not_started"
    mode: Mode | None = None
    started: str | None = None
    duration_s: float = 0.0
    stats: ChangeStats | None = None
    products: dict[str, str] = field(default_factory=dict)
    exit_code: int = 0
    error: str | None = None
    error_type: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The run's summary entry (plain, JSON-able)."""
        s = self.stats
        return {
            "name": self.name, "status": self.status, "mode": self.mode, "exit_code": self.exit_code,
            "started": self.started, "duration_s": round(self.duration_s, 3),
            "t1": self.t1, "t2": self.t2, "out": self.out,
            "pixels": s.pixels if s else None,
            "valid_pixels": s.valid_pixels if s else None,
            "changed_pixels": s.changed_pixels if s else None,
            "changed_area_km2": round(s.changed_area_km2, 6) if s else None,
            "area_method": s.area_method if s else None,
            "unknown_pixels": s.unknown_pixels if s else None,
            "observed_area_m2": round(s.observed_area_m2, 3) if s else None,
            "unknown_area_m2": round(s.unknown_area_m2, 3) if s else None,
            "observed_pct": round(s.observed_pct, 4) if s else None,
            "unknown_pct": round(s.unknown_pct, 4) if s else None,
            "unknown_area_km2": round(s.unknown_area_km2, 6) if s else None,
            # from run.json: the from/to matrix and summary (runs with class maps), the unit's drops
            "transitions": self.record.get("transitions"),
            "summary": self.record.get("summary"),
            "min_area": self.record.get("min_area"),
            "products": sorted(self.products),
            "error": None if self.error is None else {
                "exit_code": self.exit_code, "type": self.error_type, "message": self.error},
        }


@dataclass
class BatchSummary:
    """The batch's result: per-run (and per-series) outcomes and the exit code."""

    runs_file: str
    scheduler: str
    dashboard: str | None
    started: str
    finished: str
    duration_s: float
    runs: list[RunOutcome]
    interrupted: bool = False
    series: list[SeriesResult] = field(default_factory=list)
    night_report: str | None = None

    @property
    def failed(self) -> list[str]:
        """Names of the runs and series not complete (nor skipped)."""
        return [r.name for r in self.runs if r.status not in ("complete", "skipped")] + \
            [s.name for s in self.series if s.status != "complete"]

    @property
    def exit_code(self) -> int:
        """0 every run complete or skipped (every series complete), 1 any failed, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_RUN_FAILED if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        """The summary JSON document (``series`` only when the runs file has some)."""
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        doc = {
            "runs_file": self.runs_file, "scheduler": self.scheduler, "dashboard": self.dashboard,
            "started": self.started, "finished": self.finished, "duration_s": round(self.duration_s, 3),
            "exit_code": self.exit_code, "counts": counts,
            "failed": self.failed,
            "changed_area_km2": round(sum(r.stats.changed_area_km2 for r in self.runs if r.stats), 6),
            "night_report": self.night_report,
            "runs": [r.to_dict() for r in self.runs],
        }
        if self.series:
            doc["series"] = [s.to_dict() for s in self.series]
        return doc

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the summary JSON atomically."""
        p = Path(path)
        with atomic_path(p, what="batch summary") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p


def decide(spec: RunSpec, hasher: Callable[[str], str] = hash_path) -> tuple[Mode, ScenePair]:
    """Fresh, resume, overwrite or skip, from the run's ``run.json`` and fingerprint (:func:`decide_mode`).

    Raises:
        InputError: a scene is unusable (exit 3).
        OutputExistsError: ``out`` holds a run with another fingerprint and the
            run does not say ``overwrite: true`` (exit 4).
    """
    return decide_mode(spec.t1, spec.t2, spec.out, spec.cfg, who=f"run {spec.name!r}", bbox=spec.bbox,
                       overwrite=spec.overwrite, hasher=hasher,
                       fix="set 'overwrite: true' on this run in the runs file to replace it, or give it another out")


def run_batch(
    runs: RunsFile,
    *,
    scheduler: str | None = None,
    max_concurrent: int = 2,
    report: str | os.PathLike[str] | None = None,
    summary: str | os.PathLike[str] | None = None,
    progress: bool = True,
    night_report: str | os.PathLike[str] | None = None,
) -> BatchSummary:
    """Run every pair (and series) of a runs file on one cluster.

    Args:
        runs: the parsed RUNS.yaml.
        scheduler: a running scheduler's address; ``None`` = start a LocalCluster.
        max_concurrent: runs in flight at once (>= 1).
        report: save Dask's performance report of the whole batch to this HTML file.
        summary: also write the summary JSON here.
        progress: one line per run start and end on stderr.
        night_report: write the night's report (HTML) here; ``None`` = beside ``summary``
            (its name with ``.html``), or nowhere without a summary.

    Returns:
        The summary (its ``exit_code`` is the batch's).

    Raises:
        ConfigError: ``max_concurrent < 1`` or the scheduler cannot be reached (exit 2).
        OutputError: an ``s3://`` or ``gs://`` out cannot be written, or a report's folder is missing
            (exit 4; before the cluster starts).
    """
    if max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {max_concurrent!r}")
    check_report_path(report)
    if night_report is None and summary is not None:
        night_report = Path(summary).with_suffix(".html")
    check_report_file(night_report, option="--night-report")
    check_object_outs(runs)
    started, t0 = datetime.now(UTC), time.perf_counter()
    outcomes = [RunOutcome(s.name, str(s.t1), str(s.t2), s.out.url) for s in runs.runs]
    series = [SeriesResult(s.name, s.out.url, status="not_started", location=s.out) for s in runs.series]
    interrupted = False
    with connect(scheduler, runs.defaults.cluster) as client:
        address = str(client.scheduler_info()["address"])
        dashboard = client.dashboard_link
        if progress:
            what = f"{len(runs.runs)} run(s)" + (f" and {len(runs.series)} series" if runs.series else "")
            print(f"s2c-batch: {what} on {address}; dashboard {dashboard}", file=sys.stderr)
        with client.as_current(), performance_report_to(report):
            # Like `run`: CPU workers of the LocalCluster started here share the cores.
            threads = torch_threads_per_worker(client) if scheduler is None else None
            interrupted = _run_all(runs, outcomes, series, client, address, max_concurrent, progress, threads)
    result = BatchSummary(
        runs_file=str(runs.path), scheduler=address, dashboard=dashboard,
        started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        finished=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_s=time.perf_counter() - t0, runs=outcomes, interrupted=interrupted, series=series,
    )
    if night_report is not None:
        try:
            result.night_report = str(write_night_report(night_report, runs, result))
        except S2CError as exc:  # the runs' products stand; the summary says the report is missing
            log.warning("the night's report was not written: %s", exc)
    if summary is not None:
        result.write(summary)
    return result


def write_night_report(path: str | os.PathLike[str], runs: RunsFile, result: BatchSummary) -> Path:
    """The night's report of a batch: every run, and each series' pairs computed tonight with its sections.

    Raises:
        OutputError: the file cannot be written.
    """
    base = Path(path).parent
    rows: list[ReportRun] = [
        report_run(o.name, o.status, spec.out, record=o.record, report_dir=base, mode=o.mode,
                   changed_area_km2=o.stats.changed_area_km2 if o.stats else None,
                   unknown_area_km2=o.stats.unknown_area_km2 if o.stats else None, error=o.error,
                   products=sorted(o.products))
        for o, spec in zip(result.runs, runs.runs, strict=True)]
    regions, sections = list(rows), []
    for s in result.series:
        pairs, parts, region = series_report_parts(s, base, tonight_only=True, prefix=f"{s.name}/")
        if s.exception is not None and not pairs:
            pairs = [ReportRun(s.name, s.status, error=str(s.exception))]
        rows += pairs
        sections += parts
        regions.append(region)
    meta = [f"runs file {runs.path}", f"started {result.started}, finished {result.finished} "
            f"({result.duration_s:.0f} s) on {result.scheduler}"]
    return write_report(path, f"s2c-batch night of {result.started[:10]}: {runs.path.name}", rows, meta=meta,
                        sections=sections, map_runs=regions)


def check_object_outs(runs: RunsFile) -> None:
    """Probe every ``s3://`` and ``gs://`` out with a write before any run starts.

    Raises:
        OutputError: a bucket is missing, credentials are refused or an endpoint is
            unreachable; the message names the run, the URL and the fix (exit 4).
    """
    for kind, specs in (("run", runs.runs), ("series", runs.series)):
        for spec in specs:
            try:
                spec.out.probe()  # a folder is checked when its run starts
            except OutputError as exc:
                raise OutputError(f"{kind} {spec.name!r}: {exc}") from exc


def _run_all(runs: RunsFile, outcomes: list[RunOutcome], series: list[SeriesResult], client: Any, address: str,
             max_concurrent: int, progress: bool, torch_threads: int | None) -> bool:
    """Run the runs, then the series, in a thread pool; returns True when interrupted."""
    stop = threading.Event()
    active: dict[int, int] = {}  # outcome index -> thread ident
    hashes: dict[str, str] = {}
    lock = threading.Lock()

    def cached_hash(path: str) -> str:
        with lock:
            if path not in hashes:
                hashes[path] = hash_path(path)
            return hashes[path]

    def job(i: int) -> None:
        if stop.is_set():
            return
        with lock:
            active[i] = threading.get_ident()
        try:
            if i < len(runs.runs):
                _execute(runs.runs[i], outcomes[i], client, address, cached_hash, progress, torch_threads)
            else:
                k = i - len(runs.runs)
                series[k] = _execute_series(runs.series[k], client, address, cached_hash, progress, torch_threads)
        finally:
            with lock:
                active.pop(i, None)

    pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="s2c-run")
    futures: list[Future[None]] = [pool.submit(job, i) for i in range(len(runs.runs) + len(runs.series))]
    interrupted = False
    try:
        with sigterm_as_interrupt():
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        print("s2c-batch: interrupted; stopping the runs in flight (they resume next time)", file=sys.stderr)
        with lock:
            threads = list(active.values())
        for ident in threads:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))
        wait(futures)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


def _execute(spec: RunSpec, outcome: RunOutcome, client: Any, address: str,
             hasher: Callable[[str], str], progress: bool, torch_threads: int | None) -> None:
    t0 = time.perf_counter()
    outcome.started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        mode, pair = decide(spec, hasher)
        outcome.mode = mode
        if progress:
            print(f"s2c-batch: {spec.name}: {mode}", file=sys.stderr)
        if mode == "skip":
            outcome.status = "skipped"
            outcome.products = dict((read_record(spec.out) or {}).get("products") or {})
        else:
            options = RunOptions(scheduler=address, resume=mode == "resume", overwrite=mode == "overwrite",
                                 bbox=spec.bbox, progress=False, torch_threads=torch_threads)
            result = run_pair(spec.t1, spec.t2, spec.out, spec.cfg, options)
            outcome.status = "complete"
            outcome.products = dict(result.products)
        outcome.stats = _recorded_stats(spec) or change_statistics(
            client, spec.out.child(STORE), pair.grid, block=spec.cfg.tiling.block_size,
            retries=spec.cfg.cluster.retries)
        outcome.record = read_record(spec.out) or {}
    except KeyboardInterrupt:
        outcome.status, outcome.exit_code = "interrupted", EXIT_INTERRUPTED
        outcome.error, outcome.error_type = "interrupted; rerun the batch to resume it", "KeyboardInterrupt"
    except S2CError as exc:
        _failed(outcome, exc, exc.exit_code)
    except Exception as exc:  # one broken run must not stop the others
        log.exception("run %s failed", spec.name)
        _failed(outcome, exc, 1)
    outcome.duration_s = time.perf_counter() - t0
    if progress:
        what: str = outcome.status
        if outcome.error is not None:
            what = f"{what} (exit {outcome.exit_code}): {outcome.error}"
        print(f"s2c-batch: {spec.name}: {what} [{outcome.duration_s:.1f} s]", file=sys.stderr)


def _recorded_stats(spec: RunSpec) -> ChangeStats | None:
    """The counts a complete run recorded in its ``run.json`` (``coverage``); ``None``: count them again."""
    record = read_record(spec.out) or {}
    try:
        return ChangeStats.from_coverage(record["coverage"]) if record.get("status") == "complete" else None
    except (KeyError, TypeError, ValueError):
        return None


def _execute_series(spec: SeriesSpec, client: Any, address: str, hasher: Callable[[str], str], progress: bool,
                    torch_threads: int | None) -> SeriesResult:
    """One series of the batch; its failure (even before it starts) is its result, never the batch's."""
    t0 = time.perf_counter()
    if progress:
        print(f"s2c-batch: series {spec.name}: {len(spec.dates)} dates", file=sys.stderr)
    try:
        return execute_series(spec, client, address, progress=progress, torch_threads=torch_threads, hasher=hasher)
    except KeyboardInterrupt as exc:
        return SeriesResult(spec.name, spec.out.url, status="interrupted", exception=exc, location=spec.out,
                            duration_s=time.perf_counter() - t0)
    except Exception as exc:  # bad dates, grids or a pair of another config: this series only
        if not isinstance(exc, S2CError):
            log.exception("series %s failed", spec.name)
        if progress:
            print(f"s2c-batch: series {spec.name}: failed: {exc}", file=sys.stderr)
        return SeriesResult(spec.name, spec.out.url, status="failed", exception=exc, location=spec.out,
                            duration_s=time.perf_counter() - t0)


def _failed(outcome: RunOutcome, exc: BaseException, code: int) -> None:
    outcome.status, outcome.exit_code = "failed", code
    outcome.error, outcome.error_type = str(exc), type(exc).__name__
