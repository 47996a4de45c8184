"""``s2c-batch run`` as a Python function: two scenes in, change products out.

Stages: open and validate the pair (nothing is written before this passes) ->
plan -> prepare and lock ``--out`` -> fit the comparator to the scene (classical
comparators; ``.s2c/fit.json``) -> create the Zarr store -> one Dask task per block
on a cluster whose workers hold the model (tiled) or the fitted comparator
(untiled) -> with ``model.threshold: otsu``, the scene's threshold and the mask pass
-> COGs from the store -> verify -> the store's metadata consolidated -> ``run.json``
says ``complete``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.cva import CVA
from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config, check_checkpoints, mask_comparator
from s2c_batch.pipeline.errors import InputError, S2CError
from s2c_batch.pipeline.inputs.remote import input_name
from s2c_batch.pipeline.inputs.scene import ScenePair, open_pair
from s2c_batch.pipeline.products.extras import PendingExtras, class_names, start_extras, write_extras
from s2c_batch.pipeline.run import lock, object_out, outdir, output, recovery, store
from s2c_batch.pipeline.run.cluster import connect, has_gpu_workers, torch_threads_per_worker
from s2c_batch.pipeline.run.cog import write_cogs
from s2c_batch.pipeline.run.fit import fit_dcva_on_cluster, fit_on_cluster, load_fit, save_fit
from s2c_batch.pipeline.run.graph import build_graph, build_untiled_graph, write_order
from s2c_batch.pipeline.run.location import ObjectLocation, open_location
from s2c_batch.pipeline.run.output import verify_products
from s2c_batch.pipeline.run.plan import make_plan, products_for, untiled
from s2c_batch.pipeline.run.report import check_report_path, performance_report_to
from s2c_batch.pipeline.run.runlog import (
    RunLog,
    checkpoint_paths,
    describe_input,
    fingerprint,
    hash_path,
    package_version,
)
from s2c_batch.pipeline.run.signals import sigterm_as_interrupt
from s2c_batch.pipeline.run.supervise import cancel_quietly, collect_blocks, reporting_lost_cluster
from s2c_batch.pipeline.run.threshold import (
    build_mask_graph,
    choose_threshold,
    scene_histogram,
    submit_masks,
    target_classes,
)
from s2c_batch.pipeline.run.watchdog import Watchdog
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
    t1: str | os.PathLike[str],
    t2: str | os.PathLike[str],
    out: str | os.PathLike[str],
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
        out: output folder.
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
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    check_report_path(report)
    location = open_location(out, cfg.storage)
    if isinstance(location, ObjectLocation):  # before any work: a missing bucket, refused credentials, a lock
        object_out.prepare(location, resume=resume, overwrite=overwrite)
    pair = open_pair(t1, t2, cfg.input, bbox=bbox, storage=cfg.storage)
    check_checkpoints(cfg)
    checkpoints = {k: hash_path(p) for k, p in checkpoint_paths(cfg).items()}
    plan = make_plan(pair, cfg)
    timings["open"] = time.perf_counter() - t_start

    if isinstance(location, ObjectLocation):
        with lock.locked(location):
            return _run_locked(pair, plan, cfg, location, checkpoints, scheduler=scheduler,
                               resume=resume, bbox=bbox, progress=progress, timings=timings,
                               t_start=t_start, report=report, torch_threads=torch_threads)
    out_dir = Path(out).resolve()
    created = not out_dir.exists()
    outdir.prepare(out_dir, resume=resume, overwrite=overwrite)
    try:
        with outdir.locked(out_dir):
            return _run_locked(pair, plan, cfg, out_dir, checkpoints, scheduler=scheduler,
                               resume=resume, bbox=bbox, progress=progress, timings=timings,
                               t_start=t_start, report=report, torch_threads=torch_threads)
    finally:
        if created and not outdir.has_run(out_dir):
            outdir.remove_empty(out_dir)


def _run_locked(
    pair: ScenePair, plan: TilePlan, cfg: Config, out_dir: output.Out, checkpoints: dict[str, str], *,
    scheduler: str | None, resume: bool, bbox: tuple[float, float, float, float] | None,
    progress: bool, timings: dict[str, float], t_start: float,
    report: str | os.PathLike[str] | None = None, torch_threads: int | None = None,
) -> RunResult:
    fp = fingerprint(pair, cfg, checkpoints)
    run_json, ledger, store_path = output.child(out_dir, outdir.RUN_JSON), output.ledger_of(out_dir), \
        output.child(out_dir, outdir.STORE)
    resuming = resume and recovery.resumes(out_dir, fp)
    t0 = time.perf_counter()
    with connect(scheduler, cfg.cluster, numpy_only=not cfg.model.uses_torch) as client:
        timings["cluster_start"] = time.perf_counter() - t0
        if progress:
            print(f"s2c-batch: dashboard {client.dashboard_link}", file=sys.stderr)
        # Load the model on every worker before writing anything: a bad checkpoint
        # fails here and leaves the output as it was.
        t0 = time.perf_counter()
        threads = torch_threads
        if threads is None and scheduler is None:
            threads = torch_threads_per_worker(client)
        if cfg.model.uses_torch:  # untiled comparators need no model on the workers
            client.register_plugin(PredictorPlugin(cfg.model, torch_threads=threads),
                                   name=plugin_name(cfg.model))
        timings["model_load"] = time.perf_counter() - t0

        products = products_for(cfg)
        # Resume from what is on disk: verified blocks are kept, the rest is computed again.
        kept = (recovery.prepare_resume(out_dir, cfg, fingerprint=fp, grid=pair.grid, plan=plan) if resuming
                else recovery.start_fresh(out_dir))
        reuse = set(kept.reuse)
        t0 = time.perf_counter()
        with reporting_lost_cluster(client, kept=lambda: len(ledger.done()), total=plan.n_blocks):
            fitted = _fitted_comparator(client, pair, plan, cfg, out_dir, fp, resuming=resuming)
        timings["fit"] = time.perf_counter() - t0
        runlog = RunLog(run_json)
        runlog.update(
            status="running",
            started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            version=package_version(),
            fingerprint=fp,
            inputs={"t1": describe_input(pair.t1.path, pair.t1.storage),
                    "t2": describe_input(pair.t2.path, pair.t2.storage)},
            grid={"crs": pair.grid.crs.to_string(), "transform": list(pair.grid.transform),
                  "height": pair.grid.height, "width": pair.grid.width},
            bbox=list(bbox) if bbox else None,
            config=cfg.to_dict(),
            config_hash=cfg.hash(),
            checkpoints=checkpoints,
            path="untiled" if untiled(cfg) else "tiled",
            fit=fitted.to_json() if fitted is not None and cfg.model.fitted else None,
            threshold=cfg.model.threshold,
            blocks={"total": plan.n_blocks, "reused": len(reuse), "computed": 0},
            dashboard=client.dashboard_link,
            products={},
        )
        try:
            with reporting_lost_cluster(client, kept=lambda: len(ledger.done()), total=plan.n_blocks):
                if not kept.store_kept:
                    t0 = time.perf_counter()
                    create_products_store(store_path, pair, cfg, products, fp, checkpoints, fitted)
                    timings["create_store"] = time.perf_counter() - t0
                with sigterm_as_interrupt(), performance_report_to(report):
                    result = _compute(client, pair, plan, cfg, out_dir, store_path, products, reuse,
                                      ledger, runlog, progress, timings, fitted)
            verify_products(out_dir, pair, plan, ledger, result.products)
            # Last: consolidated metadata marks a store whose every block is written and verified.
            store.consolidate(store_path)
        except BaseException as exc:
            if isinstance(exc, InputError):
                recovery.start_fresh(out_dir)  # unusable input: leave no product behind
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            runlog.update_quietly(status="failed", error=reason, timings_s=_rounded(timings))
            raise
    timings["total"] = time.perf_counter() - t_start
    runlog.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  timings_s=_rounded(timings), products=result.products)
    result.timings_s = _rounded(timings)
    return result


def _fitted_comparator(client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, out_dir: output.Out,
                       fp: str, *,
                       resuming: bool) -> FittedComparator | None:
    """The comparator the blocks use: fitted to the scene, or the one a resumed run fitted.

    ``None`` for CACH; the fixed CVA when nothing is fitted; a mask-level comparator
    with its options (nothing fitted). A fit is saved to ``.s2c/fit.json`` before any
    block is written.
    """
    if cfg.model.comparator == "cach":
        return None
    if cfg.model.mask_level:
        return mask_comparator(cfg)  # type: ignore[return-value]  # options, not a fit
    if not cfg.model.fitted:
        return CVA()
    previous = load_fit(out_dir, fp) if resuming else None
    if previous is not None:
        log.info("reusing the fitted %s parameters of %s", cfg.model.comparator,
                 output.name(output.child(out_dir, f"{outdir.STATE_DIR}/{outdir.FIT_FILE}")))
        return previous
    token = uuid.uuid4().hex[:8]
    if cfg.model.comparator == "dcva":
        fitted = fit_dcva_on_cluster(client, pair, plan, cfg, token=token, gpu=has_gpu_workers(client))
    else:
        fitted = fit_on_cluster(client, pair, plan, cfg, token=token)
    save_fit(out_dir, fitted, fp)
    return fitted


def create_products_store(
    store_path: store.StorePath, pair: ScenePair, cfg: Config, products: tuple[str, ...], fp: str,
    checkpoints: dict[str, str], fitted: FittedComparator | None = None,
) -> None:
    """Create the empty, georeferenced Zarr store with provenance attributes."""
    attrs = {
        "s2c_batch_version": package_version(),
        "fingerprint": fp,
        "config_hash": cfg.hash(),
        "checkpoints": checkpoints,
        "inputs": [input_name(pair.t1.path), input_name(pair.t2.path)],
        "comparator": cfg.model.comparator,
        "threshold": cfg.model.threshold,
    }
    if fitted is not None and cfg.model.fitted:
        attrs["fit"] = fitted.to_json()
    store.create_store(store_path, pair.grid, products, shard=cfg.tiling.block_size,
                       chunk=cfg.tiling.chunk_size, attrs=attrs, class_names=class_names(cfg))


def _compute(
    client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, out_dir: output.Out,
    store_path: store.StorePath, products: tuple[str, ...], reuse: set[tuple[int, int]],
    ledger: output.Ledger,
    runlog: RunLog, progress: bool, timings: dict[str, float], fitted: FittedComparator | None = None,
) -> RunResult:
    t0 = time.perf_counter()
    token = uuid.uuid4().hex[:8]
    if untiled(cfg):
        assert fitted is not None  # every classical comparator has one
        tasks = build_untiled_graph(pair, plan, cfg, store.task_arg(store_path), fitted, skip=reuse, token=token)
    else:
        tasks = build_graph(pair, plan, cfg, store.task_arg(store_path), skip=reuse, gpu=has_gpu_workers(client),
                            token=token, comparator=fitted)
    futures = client.compute(tasks, optimize_graph=False)  # retried by collect_blocks, not by Dask
    # A written block's polygons need no finished product: they are traced while later
    # blocks are still being predicted (with Otsu, once the mask pass has written them).
    pending = PendingExtras() if cfg.model.otsu else start_extras(
        client, store_path, pair, cfg, after=dict(zip(write_order(plan, reuse), futures, strict=True)))
    try:
        bar = _progress_bar(len(futures), progress)

        def record(report: BlockReport) -> None:
            ledger.add(report.index)
            bar.update(1)

        try:
            watchdog = Watchdog(client, token, factor=cfg.cluster.stall_factor, min_s=cfg.cluster.stall_min_s,
                                retries=cfg.cluster.retries, on_change=lambda stalls: runlog.update(stalls=stalls))
            reports = collect_blocks(client, futures, retries=cfg.cluster.retries, on_done=record,
                                     watchdog=watchdog)
        except BaseException:
            cancel_quietly(client, futures)
            raise
        finally:
            bar.close()
        timings["blocks"] = time.perf_counter() - t0
        runlog.update(blocks={"total": plan.n_blocks, "reused": len(reuse), "computed": len(reports),
                              "valid_pixels_computed": sum(r.valid_pixels for r in reports)})
        if not reuse and not any(r.valid_pixels for r in reports):
            raise InputError(
                f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r} have no pixel that is valid in both "
                f"(all nodata{' inside --bbox' if pair.t1.offset != (0, 0) else ''}); check input.nodata "
                "and that the scenes cover the same ground"
            )
        if cfg.model.otsu:
            t0 = time.perf_counter()
            pending = _otsu_masks(client, pair, plan, cfg, store_path, reports, reuse, runlog, token)
            timings["threshold"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        written = {}
        if cfg.output.cog:
            written = write_cogs(client, store_path, out_dir, pair, cfg, products, runlog.data)
        timings["cogs"] = time.perf_counter() - t0
        written["change.zarr"] = output.name(store_path)
        t0 = time.perf_counter()
        previews = [r.preview for r in reports if r.preview is not None]
        written.update(write_extras(client, out_dir, pair, cfg, runlog.data, dict(written), pending, previews))
        timings["extras"] = time.perf_counter() - t0
    except BaseException:
        if client.status == "running":  # a lost scheduler cannot be asked to cancel
            pending.cancel(client)
        raise
    return RunResult(out=output.where(out_dir), status="complete", blocks=plan.n_blocks, blocks_reused=len(reuse),
                     products=written)


def _otsu_masks(client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, store_path: store.StorePath,
                reports: list[BlockReport], reuse: set[tuple[int, int]], runlog: RunLog,
                token: str) -> PendingExtras:
    """Choose the scene's Otsu threshold, write every block's mask, start the derived products.

    Returns:
        The derived-product tasks, started behind the mask tasks.
    """
    hist = scene_histogram(client, store.task_arg(store_path), plan, [r.histogram for r in reports if r.histogram],
                           reuse, token=token, retries=cfg.cluster.retries)
    if not hist.sum():
        raise InputError(
            f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r} have no pixel that is valid in both; "
            "Otsu's threshold needs valid pixels (check input.nodata and --bbox)"
        )
    chosen = choose_threshold(hist, ignore_zero=cfg.model.comparator == "ucd_scm")
    runlog.update(threshold=chosen.to_json())
    store.update_attrs(store_path, {"threshold": chosen.to_json()})
    masks = submit_masks(client, build_mask_graph(plan, store.task_arg(store_path), chosen.level, target_classes(cfg),
                                                  with_classes=cfg.model.identifier != "none", token=token),
                         cfg.cluster.retries)
    pending = start_extras(client, store_path, pair, cfg, after=masks)
    try:
        client.gather(list(masks.values()))
    except BaseException:
        client.cancel(list(masks.values()))
        pending.cancel(client)
        raise
    return pending


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="blocks", unit="block", disable=not enabled, file=sys.stderr)


def _rounded(t: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in t.items()}


__all__ = ["RunResult", "S2CError", "run_change_detection"]
