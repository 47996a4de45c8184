"""``s2c-batch run`` as a Python function: two scenes in, change products out.

Stages: open and validate the pair (nothing is written before this passes) ->
plan -> prepare and lock ``--out`` -> the co-registration QA (the shift between the
dates per block; with ``input.coregister: global`` t2 is corrected by its median,
:mod:`~s2c_batch.pipeline.run.coregister`) -> fit the comparator to the scene (classical
comparators; ``.s2c/fit.json``) -> create the Zarr store -> one Dask task per block
on a cluster whose workers hold the model (tiled) or the fitted comparator
(untiled) -> with ``model.threshold: otsu``, the scene's threshold and the mask pass
-> with ``output.min_area_m2``, the minimum mapping unit's pass -> COGs from the
store -> the observed and unknown area (``coverage``) -> the derived products and,
with class maps, the from/to summary -> verify -> the store's metadata consolidated
-> ``run.json`` says ``complete``. Each stage is timed into ``run.json``'s
``timings_s`` (:meth:`~s2c_batch.pipeline.output.runlog.RunLog.stage`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.registry import Fit, RunComparator, create_comparator
from s2c_batch.pipeline.cluster import progress
from s2c_batch.pipeline.cluster.connect import connect, has_gpu_workers, torch_threads_per_worker
from s2c_batch.pipeline.cluster.report import check_report_path, performance_report_to
from s2c_batch.pipeline.cluster.signals import sigterm_as_interrupt
from s2c_batch.pipeline.cluster.supervise import cancel_quietly, collect_blocks, reporting_lost_cluster
from s2c_batch.pipeline.cluster.watchdog import Watchdog
from s2c_batch.pipeline.config import Config, check_checkpoints, comparator_options
from s2c_batch.pipeline.errors import InputError, S2CError
from s2c_batch.pipeline.inputs.identity import describe_input
from s2c_batch.pipeline.inputs.scene import ScenePair, open_pair
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.layout import COREG_FILE, FIT_FILE, STATE_DIR
from s2c_batch.pipeline.output.locate import open_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.runlog import RunLog, Timings
from s2c_batch.pipeline.output.verify import verify_products
from s2c_batch.pipeline.products.area import ChangeStats, change_statistics
from s2c_batch.pipeline.products.extras import PendingExtras, class_names, start_extras, summarise, write_extras
from s2c_batch.pipeline.run import coregister, recovery
from s2c_batch.pipeline.run.cog import write_cogs
from s2c_batch.pipeline.run.context import RunContext, RunOptions
from s2c_batch.pipeline.run.fingerprint import checkpoint_paths, fingerprint, hash_path, package_version
from s2c_batch.pipeline.run.fit import fit_dcva_on_cluster, fit_on_cluster, load_fit, save_fit
from s2c_batch.pipeline.run.graph import build_graph, build_untiled_graph, write_order
from s2c_batch.pipeline.run.mmu import apply_min_area
from s2c_batch.pipeline.run.plan import make_plan, untiled
from s2c_batch.pipeline.run.threshold import (
    build_mask_graph,
    choose_threshold,
    scene_histogram,
    submit_masks,
    target_classes,
)
from s2c_batch.pipeline.run.worker import BlockReport, PredictorPlugin, plugin_name

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced (``out``: the folder, or the URL of an object-store prefix)."""

    out: Path | str
    status: str
    blocks: int
    blocks_reused: int
    products: dict[str, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)


def run_change_detection(
    t1: str | os.PathLike[str] | Source,
    t2: str | os.PathLike[str] | Source,
    out: str | os.PathLike[str] | Location,
    cfg: Config,
    *,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    bbox: tuple[float, float, float, float] | None = None,
    progress: bool = True,
    report: str | os.PathLike[str] | None = None,
    torch_threads: int | None = None,
) -> RunResult:
    """Run change detection on a pair of scenes.

    Args:
        t1: earlier scene (its grid is the output grid).
        t2: later scene.
        out: output folder, or ``s3://`` or ``gs://bucket/prefix``.
        cfg: resolved config.
        scheduler: address of a running Dask scheduler; ``None`` = a LocalCluster.
        resume: finish a previous run with the same fingerprint, reusing its blocks.
        overwrite: replace a previous run.
        bbox: AOI ``(minx, miny, maxx, maxy)`` in t1's CRS.
        progress: show a progress bar on stderr.
        report: save Dask's performance report of the block computation to this HTML file.
        torch_threads: torch intra-op threads on each CPU worker; ``None`` = the
            worker's share of this machine's cores on the LocalCluster this call
            starts, and Dask's default (one) on a ``scheduler``'s workers.

    Returns:
        The run's summary (also in ``out/run.json``).

    Raises:
        InputError: unusable scenes (exit 3). ConfigError / CheckpointError (exit 2).
        OutputError: output exists, is locked or unwritable, or the report's folder
            is missing (exit 4).
    """
    options = RunOptions(scheduler=scheduler, resume=resume, overwrite=overwrite, bbox=bbox, progress=progress,
                         report=report, torch_threads=torch_threads)
    return run_pair(Source.parse(t1), Source.parse(t2), out, cfg, options)


def run_pair(t1: Source, t2: Source, out: str | os.PathLike[str] | Location, cfg: Config,
             options: RunOptions) -> RunResult:
    """:func:`run_change_detection` with its options as one value (``batch`` and ``compare`` call this).

    Raises:
        As :func:`run_change_detection`.
    """
    timings = Timings()
    with timings.stage("open"):
        check_report_path(options.report)
        location = open_location(out, cfg.storage)
        # Before any work: a missing bucket, refused credentials, a lock (on object storage).
        location.precheck(resume=options.resume, overwrite=options.overwrite)
        pair = open_pair(t1, t2, cfg.input, bbox=options.bbox, storage=cfg.storage)
        check_checkpoints(cfg)
        checkpoints = {k: hash_path(p) for k, p in checkpoint_paths(cfg).items()}
        plan = make_plan(pair, cfg)
    location = location.resolve()
    with location.claim(resume=options.resume, overwrite=options.overwrite):
        ctx = RunContext(pair, plan, cfg, location, options, checkpoints,
                         fingerprint(pair, cfg, checkpoints), RunLog(location, timings=timings))
        return _run_claimed(ctx)


def _run_claimed(ctx: RunContext) -> RunResult:
    """Every stage after the output is held: cluster, model, fit, store, blocks, products, verification."""
    cfg, options, runlog, plan, pair = ctx.cfg, ctx.options, ctx.runlog, ctx.plan, ctx.pair
    base_pair, base_fingerprint = ctx.pair, ctx.fingerprint
    saved = coregister.saved_coregistration(ctx.out, base_fingerprint) if options.resume else None
    shift = coregister.applied(saved)
    if shift is not None:  # the shift the first attempt applied: part of the run's fingerprint
        _apply_shift(ctx, shift)
    resuming = options.resume and recovery.resumes(ctx.out, ctx.fingerprint)
    if not resuming and saved is not None:  # not this run's: measure again
        ctx.pair, ctx.fingerprint, saved = base_pair, base_fingerprint, None
    with contextlib.ExitStack() as stack:
        with runlog.stage("cluster_start"):
            client = stack.enter_context(connect(options.scheduler, cfg.cluster, numpy_only=not cfg.model.uses_torch))
        if options.progress:
            print(f"s2c-batch: dashboard {client.dashboard_link}", file=sys.stderr)
        # Load the model on every worker before writing anything: a bad checkpoint
        # fails here and leaves the output as it was.
        with runlog.stage("model_load"):
            _load_model(ctx, client)

        # Resume from what is on disk: verified blocks are kept, the rest is computed again.
        kept = (recovery.prepare_resume(ctx.out, cfg, fingerprint=ctx.fingerprint, grid=pair.grid, plan=plan)
                if resuming else recovery.start_fresh(ctx.out))
        reuse = set(kept.reuse)
        runlog.update(
            status="running",
            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            version=package_version(),
            fingerprint=ctx.fingerprint,
            inputs=_inputs(pair),
            grid={"crs": pair.grid.crs.to_string(), "transform": list(pair.grid.transform),
                  "height": pair.grid.height, "width": pair.grid.width},
            bbox=list(options.bbox) if options.bbox else None,
            config=cfg.to_dict(),
            config_hash=cfg.hash(),
            checkpoints=ctx.checkpoints,
            path="untiled" if untiled(cfg) else "tiled",
            fit=None,
            coregistration=None,
            threshold=cfg.model.threshold,
            blocks={"total": plan.n_blocks, "reused": len(reuse), "computed": 0},
            dashboard=client.dashboard_link,
            products={},
        )
        try:
            with _reporting_lost_cluster(ctx, client):
                # The QA reads both dates first: a damaged input fails here, recorded in run.json.
                with runlog.stage("coregistration"):
                    coregistration = _coregistration(ctx, client, saved, base_fingerprint)
                pair = ctx.pair  # t2 corrected by input.coregister: global
                with runlog.stage("fit"):
                    fitted = _fitted_comparator(ctx, client, resuming=resuming)
            runlog.update(fingerprint=ctx.fingerprint, coregistration=coregistration,
                          fit=fitted.to_json() if fitted is not None and cfg.model.fitted else None)
            with _reporting_lost_cluster(ctx, client):
                if not kept.store_kept:
                    with runlog.stage("create_store"):
                        create_products_store(ctx, fitted)
                with sigterm_as_interrupt(), performance_report_to(options.report):
                    result = _compute(ctx, client, reuse, fitted)
            verify_products(ctx.out, pair, plan, ctx.ledger, result.products)
            # Last: consolidated metadata marks a store whose every block is written and verified.
            store.consolidate(ctx.store)
        except BaseException as exc:
            if isinstance(exc, InputError):
                recovery.start_fresh(ctx.out)  # unusable input: leave no product behind
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            runlog.update_quietly(status="failed", error=reason, timings_s=runlog.timings.rounded())
            raise
    runlog.timings.total()
    runlog.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  timings_s=runlog.timings.rounded(), products=result.products)
    result.timings_s = runlog.timings.rounded()
    return result


def _inputs(pair: ScenePair) -> dict[str, Any]:
    """``run.json``'s ``inputs``: each scene and, when given, its external mask."""
    inputs = {"t1": describe_input(pair.t1.raster, pair.t1.storage),
              "t2": describe_input(pair.t2.raster, pair.t2.storage)}
    for label, source in (("t1", pair.t1), ("t2", pair.t2)):
        if source.mask is not None:
            inputs[f"mask_{label}"] = {**describe_input(source.mask.raster, source.mask.storage),
                                       "rule": source.mask.rule.to_json()}
    return inputs


def _apply_shift(ctx: RunContext, shift: tuple[float, float]) -> None:
    """Read t2 onto t1's grid moved by ``shift`` from now on; the run's fingerprint holds the shift."""
    ctx.pair = coregister.shifted_pair(ctx.pair, shift, ctx.cfg.input.resampling)
    ctx.fingerprint = fingerprint(ctx.pair, ctx.cfg, ctx.checkpoints)


def _coregistration(ctx: RunContext, client: Any, saved: dict[str, Any] | None,
                    base_fingerprint: str) -> dict[str, Any] | None:
    """The co-registration QA record (``None`` with ``input.coreg_qa: false``); corrects t2 when asked.

    A resumed run reuses the record (and the shift) its first attempt saved; otherwise the
    shift is measured per block, t2 is corrected by the median under ``input.coregister:
    global``, and the record is saved to ``.s2c/coregistration.json`` before any block.
    """
    cfg = ctx.cfg
    if not cfg.input.coreg_qa:
        return None
    if saved is not None:
        log.info("reusing the co-registration QA (applied shift %s px) of %s", saved.get("applied_shift_px"),
                 ctx.out.href(f"{STATE_DIR}/{COREG_FILE}"))
        return saved
    shifts = coregister.measure_on_cluster(client, ctx.pair, ctx.plan, cfg, token=uuid.uuid4().hex[:8])
    record = coregister.coregistration_record(shifts, ctx.pair, cfg)
    median = record["median_shift_px"]
    if cfg.input.coregister == "global" and median is not None:
        record["applied_shift_px"] = list(median)
        _apply_shift(ctx, (median[0], median[1]))
    coregister.report(record)
    coregister.save_coregistration(ctx.out, record, base_fingerprint)
    return record


def _reporting_lost_cluster(ctx: RunContext, client: Any) -> contextlib.AbstractContextManager[None]:
    """A lost scheduler inside the block as one error naming the blocks kept (:func:`reporting_lost_cluster`)."""
    return reporting_lost_cluster(client, kept=lambda: len(ctx.ledger.done()), total=ctx.plan.n_blocks)


def _load_model(ctx: RunContext, client: Any) -> None:
    """Register the predictor plugin: every worker loads the model (untiled comparators need none)."""
    threads = ctx.options.torch_threads
    if threads is None and ctx.options.scheduler is None:
        threads = torch_threads_per_worker(client)
    if ctx.cfg.model.uses_torch:
        client.register_plugin(PredictorPlugin(ctx.cfg.model, torch_threads=threads), name=plugin_name(ctx.cfg.model))


def _fitted_comparator(ctx: RunContext, client: Any, *, resuming: bool) -> RunComparator | None:
    """The comparator the blocks use: fitted to the scene, or the one a resumed run fitted.

    ``None`` for CACH; the fixed CVA when nothing is fitted; a mask-level comparator
    with its options (nothing fitted). A fit is saved to ``.s2c/fit.json`` before any
    block is written.
    """
    cfg, pair, plan = ctx.cfg, ctx.pair, ctx.plan
    if not cfg.model.fitted:
        return create_comparator(cfg.model.comparator, comparator_options(cfg))
    previous = load_fit(ctx.out, ctx.fingerprint) if resuming else None
    if previous is not None:
        log.info("reusing the fitted %s parameters of %s", cfg.model.comparator,
                 ctx.out.href(f"{STATE_DIR}/{FIT_FILE}"))
        return previous
    token = uuid.uuid4().hex[:8]
    if cfg.model.spec.fit is Fit.TILES:
        fitted = fit_dcva_on_cluster(client, pair, plan, cfg, token=token, gpu=has_gpu_workers(client))
    else:
        fitted = fit_on_cluster(client, pair, plan, cfg, token=token)
    save_fit(ctx.out, fitted, ctx.fingerprint)
    return fitted


def create_products_store(ctx: RunContext, fitted: RunComparator | None = None) -> None:
    """Create the run's empty, georeferenced Zarr store with provenance attributes."""
    cfg, pair = ctx.cfg, ctx.pair
    attrs = {
        "s2c_batch_version": package_version(),
        "fingerprint": ctx.fingerprint,
        "config_hash": cfg.hash(),
        "checkpoints": ctx.checkpoints,
        "inputs": [pair.t1.raster.name, pair.t2.raster.name],
        "comparator": cfg.model.comparator,
        "threshold": cfg.model.threshold,
    }
    if fitted is not None and cfg.model.fitted:
        attrs["fit"] = fitted.to_json()
    store.create_store(ctx.store, pair.grid, ctx.products, shard=cfg.tiling.block_size,
                       chunk=cfg.tiling.chunk_size, attrs=attrs, class_names=class_names(cfg))


def _compute(ctx: RunContext, client: Any, reuse: set[tuple[int, int]],
             fitted: RunComparator | None = None) -> RunResult:
    """The block tasks (all but ``reuse``), Otsu's mask pass, the unit's pass, the COGs and the derived products."""
    cfg, pair, plan, runlog, store_path = ctx.cfg, ctx.pair, ctx.plan, ctx.runlog, ctx.store
    token = uuid.uuid4().hex[:8]
    pending = PendingExtras()
    try:
        with runlog.stage("blocks"):
            if untiled(cfg):
                assert isinstance(fitted, FittedComparator)  # every classical comparator has one
                tasks = build_untiled_graph(pair, plan, cfg, store_path, fitted, skip=reuse, token=token)
            else:
                tasks = build_graph(pair, plan, cfg, store_path, skip=reuse, gpu=has_gpu_workers(client),
                                    token=token, comparator=fitted)
            reported = progress.install(client)  # the block tasks report their steps to the watchdog
            futures = client.compute(tasks, optimize_graph=False)  # retried by collect_blocks, not by Dask
            # A written block's polygons need no finished product: they are traced while later
            # blocks are still being predicted (with Otsu, once the mask pass has written them;
            # with a minimum mapping unit, once its pass has).
            if not cfg.model.otsu and cfg.output.min_area_m2 is None:
                pending = start_extras(client, store_path, pair, cfg,
                                       after=dict(zip(write_order(plan, reuse), futures, strict=True)))
            reports = _collect(ctx, client, futures, token, reported=reported)
        runlog.update(blocks={"total": plan.n_blocks, "reused": len(reuse), "computed": len(reports),
                              "valid_pixels_computed": sum(r.valid_pixels for r in reports)})
        if not reuse and not any(r.valid_pixels for r in reports):
            raise InputError(
                f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r} have no pixel that is valid in both "
                f"(all nodata{' inside --bbox' if pair.t1.offset != (0, 0) else ''}); check input.nodata "
                "and that the scenes cover the same ground"
            )
        if cfg.model.otsu:
            with runlog.stage("threshold"):
                pending = _otsu_masks(ctx, client, reports, reuse, token)
        if cfg.output.min_area_m2 is not None:
            with runlog.stage("min_area"):
                pending = _min_area(ctx, client, token)
        written = {}
        with runlog.stage("cogs"):
            if cfg.output.cog:
                written = write_cogs(client, store_path, ctx.out, pair, cfg, ctx.products, runlog.data)
        written["change.zarr"] = str(store_path.href())
        with runlog.stage("coverage"):
            record_coverage(ctx, client)
        with runlog.stage("extras"):
            previews = [r.preview for r in reports if r.preview is not None]
            summary = summarise(client, pending, pair, cfg)  # the from/to summary, with class maps
            if summary:
                runlog.update(**summary)
            written.update(write_extras(client, ctx.out, pair, cfg, runlog.data, dict(written), pending, previews))
    except BaseException:
        if client.status == "running":  # a lost scheduler cannot be asked to cancel
            pending.cancel(client)
        raise
    return RunResult(out=ctx.out.href(), status="complete", blocks=plan.n_blocks, blocks_reused=len(reuse),
                     products=written)


def record_coverage(ctx: RunContext, client: Any) -> ChangeStats:
    """Count the observed, unknown and changed pixels of the finished store into ``run.json``'s ``coverage``.

    A pixel is unknown (``change_mask`` 255) when one date did not observe it; the STAC
    item and the batch summary report the same figures.
    """
    stats = change_statistics(client, ctx.store, ctx.pair.grid, block=ctx.cfg.tiling.block_size,
                              retries=ctx.cfg.cluster.retries)
    ctx.runlog.update(coverage=stats.coverage())
    if stats.unknown_pixels:
        log.info("unknown (not observed in both dates): %d pixels, %.0f m2, %.2f%% of the grid",
                 stats.unknown_pixels, stats.unknown_area_m2, stats.unknown_pct)
    return stats


def _collect(ctx: RunContext, client: Any, futures: list[Any], token: str, *,
             reported: bool = True) -> list[BlockReport]:
    """Wait for the block tasks under the watchdog, recording each block in the ledger as it is written.

    ``reported``: the workers report the tasks' progress (the watchdog's ``reported``).
    """
    cfg, runlog = ctx.cfg, ctx.runlog
    bar = _progress_bar(len(futures), ctx.options.progress)

    def record(report: BlockReport) -> None:
        ctx.ledger.add(report.index)
        bar.update(1)

    try:
        watchdog = Watchdog(client, token, factor=cfg.cluster.stall_factor, min_s=cfg.cluster.stall_min_s,
                            retries=cfg.cluster.retries, idle_min_s=cfg.cluster.stall_idle_min_s,
                            reported=reported, on_change=lambda stalls: runlog.update(stalls=stalls))
        reports: list[BlockReport] = collect_blocks(client, futures, retries=cfg.cluster.retries, on_done=record,
                                                    watchdog=watchdog)
    except BaseException:
        cancel_quietly(client, futures)
        raise
    finally:
        bar.close()
    return reports


def _otsu_masks(ctx: RunContext, client: Any, reports: list[BlockReport], reuse: set[tuple[int, int]],
                token: str) -> PendingExtras:
    """Choose the scene's Otsu threshold, write every block's mask, start the derived products.

    Returns:
        The derived-product tasks, started behind the mask tasks.
    """
    cfg, pair, plan, store_path = ctx.cfg, ctx.pair, ctx.plan, ctx.store
    hist = scene_histogram(client, store_path, plan, [r.histogram for r in reports if r.histogram],
                           reuse, token=token, retries=cfg.cluster.retries)
    if not hist.sum():
        raise InputError(
            f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r} have no pixel that is valid in both; "
            "Otsu's threshold needs valid pixels (check input.nodata and --bbox)"
        )
    chosen = choose_threshold(hist, ignore_zero=cfg.model.spec.needs.otsu)
    ctx.runlog.update(threshold=chosen.to_json())
    store.update_attrs(store_path, {"threshold": chosen.to_json()})
    masks = submit_masks(client, build_mask_graph(plan, store_path, chosen.level, target_classes(cfg),
                                                  with_classes=cfg.model.identifier != "none", token=token),
                         cfg.cluster.retries)
    unit = cfg.output.min_area_m2 is not None  # then the derived products start after the unit's pass
    pending = PendingExtras() if unit else start_extras(client, store_path, pair, cfg, after=masks)
    try:
        client.gather(list(masks.values()))
    except BaseException:
        client.cancel(list(masks.values()))
        pending.cancel(client)
        raise
    return pending


def _min_area(ctx: RunContext, client: Any, token: str) -> PendingExtras:
    """Drop the changed regions below ``output.min_area_m2``, record it, start the derived products.

    Returns:
        The derived-product tasks, started on the filtered mask.
    """
    cfg = ctx.cfg
    assert cfg.output.min_area_m2 is not None
    result = apply_min_area(client, ctx.store, ctx.pair.grid, block=cfg.tiling.block_size,
                            min_area_m2=cfg.output.min_area_m2, retries=cfg.cluster.retries, token=token)
    ctx.runlog.update(min_area=result.to_json())
    return start_extras(client, ctx.store, ctx.pair, cfg, after={})


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="blocks", unit="block", disable=not enabled, file=sys.stderr)


__all__ = ["RunOptions", "RunResult", "S2CError", "run_change_detection", "run_pair"]
