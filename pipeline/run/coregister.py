"""The co-registration stage of a run: how far t2 lies from t1, per block, and its correction.

Between the model load and the fit. One Dask task per block reads a window of
``input.coreg_window`` pixels at the centre of the block's core from both dates (the
luminance of ``input.bands``, or ``input.coreg_band``) and measures the sub-pixel shift
between them (:func:`s2c_batch.kernels.raster.coregistration.measure_shift`); the client
takes the median of the confident blocks (:func:`~s2c_batch.kernels.raster.coregistration.summarise_shifts`).
The record (:func:`coregistration_record`) goes into ``run.json`` and the STAC item as
``coregistration``; a median (or a block) longer than ``input.max_shift_px`` is flagged,
and logged as a warning that names the shift.

With ``input.coregister: global``, t2 is then read through a warped VRT onto t1's grid
moved by the median (:func:`shifted_pair`): lazily, window by window, like
``input.align: reproject``, before any comparator sees it; t2's external mask moves with
it. The shift applied is part of the run's fingerprint. The record is saved to
``.s2c/coregistration.json`` under the fingerprint of the run before the shift, so that
``--resume`` (and ``batch``) reuse the very shift of the first attempt instead of
measuring again (:func:`saved_coregistration`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import dask
from affine import Affine

from s2c_batch.kernels.raster.coregistration import (
    BAND_PASS,
    ShiftEstimate,
    luminance,
    measure_shift,
    summarise_shifts,
    usable,
)
from s2c_batch.kernels.raster.tiling import TilePlan, Window
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import portable_errors
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.grid import WarpSpec
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.layout import COREG_FILE, STATE_DIR
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.products.area import pixel_size_m

log = logging.getLogger(__name__)

#: The shift is resolved to 1 / UPSAMPLE px.
UPSAMPLE = 100


def qa_window(core: Window, side: int) -> Window:
    """The window measured in a block: ``side`` x ``side`` pixels at the centre of its core (clipped to it)."""
    h, w = min(side, core.height), min(side, core.width)
    return Window(core.row + (core.height - h) // 2, core.col + (core.width - w) // 2, h, w)


@portable_errors
def measure_block(pair: ScenePair, window: Window, band: int | None) -> ShiftEstimate:
    """The shift of t2 against t1 in one window (the task run on a worker)."""
    s1, s2 = pair.t1, pair.t2
    if band is not None:
        s1, s2 = replace(s1, bands=(band,)), replace(s2, bands=(band,))
    d1, v1 = reader.read_window(s1, window)
    d2, v2 = reader.read_window(s2, window)
    return measure_shift(luminance(d1), luminance(d2), v1 & v2, upsample=UPSAMPLE)


@dataclass(frozen=True)
class BlockShift:
    """One block's measurement: where, and the estimate."""

    index: tuple[int, int]
    window: Window
    estimate: ShiftEstimate


def measure_on_cluster(client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, *, token: str) -> list[BlockShift]:
    """One task per block; the estimates in block order (the same for any worker count)."""
    nbi, nbj = plan.block_grid
    blocks = [((i, j), qa_window(plan.block_at(i, j).core, cfg.input.coreg_window))
              for i in range(nbi) for j in range(nbj)]
    tasks = [dask.delayed(measure_block, pure=False)(pair, window, cfg.input.coreg_band,
                                                    dask_key_name=f"s2c-shift-{token}-{i}-{j}")
             for (i, j), window in blocks]
    t0 = time.perf_counter()
    futures = client.compute(tasks, optimize_graph=False, retries=cfg.cluster.retries)
    try:
        estimates = client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    log.info("co-registration QA over %d block(s): %.2f s", len(blocks), time.perf_counter() - t0)
    return [BlockShift(index, window, est) for (index, window), est in zip(blocks, estimates, strict=True)]


def coregistration_record(shifts: list[BlockShift], pair: ScenePair, cfg: Config) -> dict[str, Any]:
    """What ``run.json`` and the STAC item record under ``coregistration`` (before any shift is applied).

    Pixels are output-grid pixels; ``(dy, dx)``: t1's pixel ``(r, c)`` shows up at t2's
    ``(r + dy, c + dx)``; metres are those pixel steps on the ground at the grid's centre.
    """
    inp = cfg.input
    estimates = [s.estimate for s in shifts]
    summary = summarise_shifts(estimates, min_confidence=inp.coreg_min_confidence, max_shift_px=inp.max_shift_px)
    row_m, col_m = pixel_size_m(pair.grid)

    def metres(v: tuple[float, float] | None) -> list[float] | None:
        return None if v is None else [round(v[0] * row_m, 4), round(v[1] * col_m, 4)]

    median = summary.median
    return {
        "method": f"scikit-image phase_cross_correlation (normalization=None, 1/{UPSAMPLE} px) of the "
                  f"difference of Gaussians (sigma {BAND_PASS[0]:g}-{BAND_PASS[1]:g} px), Hann window",
        "band": inp.coreg_band if inp.coreg_band is not None else f"luminance of input.bands {list(inp.bands)}",
        "window_px": inp.coreg_window,
        "min_confidence": inp.coreg_min_confidence,
        "max_shift_px": inp.max_shift_px,
        "blocks_total": len(shifts),
        "blocks_used": len(summary.used),
        "median_shift_px": None if median is None else list(median),
        "median_shift_m": metres(median),
        "shift_length_px": None if summary.length is None else round(summary.length, 4),
        "shift_length_m": None if median is None else round(math.hypot(median[0] * row_m, median[1] * col_m), 4),
        "spread_px": None if summary.spread is None else list(summary.spread),
        "spread_m": metres(summary.spread),
        "above_max": summary.above_limit,
        "blocks_above_max": [list(shifts[i].index) for i in summary.above],
        "coregister": inp.coregister,
        "applied_shift_px": None,
        "blocks": [_block_json(s, usable(s.estimate, inp.coreg_min_confidence), inp.coreg_min_confidence)
                   for s in shifts],
    }


def _block_json(shift: BlockShift, used: bool, min_confidence: float) -> dict[str, Any]:
    est, w = shift.estimate, shift.window
    finite = all(math.isfinite(v) for v in est.shift)
    if used:
        reason = None
    elif not finite or est.confidence >= min_confidence:  # nothing measured, or a structural doubt
        reason = est.reason
    else:  # water, snow, fields, clouds, change: the aligned dates hardly correlate
        reason = "low confidence"
    return {"block": list(shift.index), "window": [w.row, w.col, w.height, w.width],
            "shift_px": list(est.shift) if finite else None, "confidence": est.confidence,
            "isotropy": est.isotropy, "disagreement_px": est.disagreement, "observed": est.observed,
            "used": used, "reason": reason}


def report(record: dict[str, Any]) -> None:
    """Log the QA: a warning naming the shift when it is above ``input.max_shift_px``, or when none was measured."""
    median, used, total = record["median_shift_px"], record["blocks_used"], record["blocks_total"]
    if median is None:  # a warning where it leaves a correction undone
        reasons = sorted({b["reason"] for b in record["blocks"] if b["reason"]})
        level = logging.WARNING if record["coregister"] == "global" else logging.INFO
        log.log(level, "co-registration QA: no block of %d could measure the shift between t1 and t2 (%s); "
                "their alignment is unknown%s", total, ", ".join(reasons) or "none",
                " and t2 is not corrected" if record["coregister"] == "global" else "")
        return
    (dy, dx), (my, mx) = median, record["median_shift_m"]
    text = (f"t2 lies ({dy:+.2f}, {dx:+.2f}) px = ({my:+.2f}, {mx:+.2f}) m (rows, columns) from t1, the median of "
            f"{used} of {total} block(s), spread {record['spread_px']} px")
    if record["above_max"]:
        fix = ("t2 is resampled onto t1's grid shifted back by it (input.coregister: global)"
               if record["coregister"] == "global" else
               "changes along every edge are likely; set input.coregister=global to correct it, or co-register "
               "the scenes (e.g. AROSICS)")
        log.warning("co-registration: %s, above input.max_shift_px=%g; %s", text, record["max_shift_px"], fix)
    else:
        log.info("co-registration: %s", text)
    if record["blocks_above_max"] and not record["above_max"]:
        log.warning("co-registration: %d block(s) lie more than input.max_shift_px=%g px apart: %s",
                    len(record["blocks_above_max"]), record["max_shift_px"], record["blocks_above_max"])


def shifted_pair(pair: ScenePair, shift: tuple[float, float], resampling: str) -> ScenePair:
    """``pair`` with t2 read onto t1's grid moved by ``shift`` (``(dy, dx)`` output pixels), lazily.

    Output pixel ``(r, c)`` of the corrected t2 is sampled where the uncorrected t2 (on t1's
    grid, warped there or not) has ``(r + dy, c + dx)``: t1's pixel shows up there. The
    warp's grid is t1's whole grid (``--bbox`` keeps its offset) moved by the shift; t2's
    external mask moves with it, resampled nearest.
    """
    t1, t2, grid = pair.t1, pair.t2, pair.grid
    whole = Affine(*grid.transform) * Affine.translation(-t1.offset[1], -t1.offset[0])  # t1's whole grid
    moved = whole * Affine.translation(shift[1], shift[0])
    warp = WarpSpec(grid.crs_wkt, (moved.a, moved.b, moved.c, moved.d, moved.e, moved.f), t1.height, t1.width,
                    resampling, shift_px=(shift[0], shift[1]))
    mask = t2.mask
    if mask is not None:  # read onto the same moved grid, whatever grid it was read on before
        mask = replace(mask, height=t1.height, width=t1.width, warp=replace(warp, resampling="nearest"))
    return replace(pair, t2=replace(t2, warp=warp, height=t1.height, width=t1.width, mask=mask))


def applied(record: dict[str, Any] | None) -> tuple[float, float] | None:
    """The shift a record says was applied to t2, or ``None``."""
    value = (record or {}).get("applied_shift_px")
    return None if value is None else (float(value[0]), float(value[1]))


def save_coregistration(out: Location, record: dict[str, Any], base_fingerprint: str) -> None:
    """Write ``.s2c/coregistration.json`` under the fingerprint of the run before any shift.

    Raises:
        OutputError: it cannot be written (names the file or URL and the fix).
    """
    doc = {"fingerprint": base_fingerprint, "coregistration": record}
    out.save(f"{STATE_DIR}/{COREG_FILE}", json.dumps(doc, indent=1).encode())


def saved_coregistration(out: Location, base_fingerprint: str) -> dict[str, Any] | None:
    """The QA record an earlier attempt of this run saved, or ``None`` (none, unreadable, another run's)."""
    try:
        doc = json.loads(out.read(f"{STATE_DIR}/{COREG_FILE}") or b"null")
        if doc.get("fingerprint") != base_fingerprint or not isinstance(doc.get("coregistration"), dict):
            return None
        return dict(doc["coregistration"])
    except (OSError, ValueError, TypeError, AttributeError):
        return None
