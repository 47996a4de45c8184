"""The fit stage of a run: whole-scene parameters of a classical comparator, on the cluster.

Between the plan and the blocks, for the comparators that need it (``pca_kmeans``,
``irmad``, and ``cva`` with ``model.standardize: scene`` or ``model.threshold: otsu``):
each round of :func:`s2c_batch.kernels.comparators.registry.fit_comparator` becomes one
Dask task per output block (:func:`fit_block`, which reads the block in strips of whole
statistics cells), and the client adds up their small results. The fitted parameters
are written to ``.s2c/fit.json`` before any block, so ``--resume`` predicts the
remaining blocks with the very parameters of the first ones; they also go into
``run.json`` and the store's attributes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.classical.fitting import FitRound, FitSettings
from s2c_batch.kernels.comparators.registry import RunComparator, comparator_from_json, fit_comparator
from s2c_batch.kernels.errors import FitError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.prediction import to_unit
from s2c_batch.kernels.raster.tiling import TilePlan, Window
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import InputError, portable_errors
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.layout import FIT_FILE, STATE_DIR
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.run.worker import worker_predictor

log = logging.getLogger(__name__)

def fit_settings(pair: ScenePair, cfg: Config) -> FitSettings:
    """What :func:`~s2c_batch.kernels.comparators.registry.fit_comparator` needs besides the pixels."""
    return settings_of(cfg, bands=len(pair.t1.bands), scene_shape=pair.grid.shape)


def settings_of(cfg: Config, *, bands: int, scene_shape: tuple[int, int]) -> FitSettings:
    """:func:`fit_settings` of a scene of ``bands`` bands and ``scene_shape`` pixels (``eval``'s images)."""
    return FitSettings(
        comparator=cfg.model.comparator,
        bands=bands,
        scene_shape=scene_shape,
        cell=cfg.tiling.chunk_size,
        standardize=cfg.model.standardize == "scene",
        fixed_threshold=not cfg.model.otsu,
        fit=cfg.fit,
        pca_kmeans=cfg.pca_kmeans,
        irmad=cfg.irmad,
    )


def read_unit(pair: ScenePair, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both dates of a window in [0, 1] (0 where invalid) and where both are valid.

    Returns:
        ``(t1 float32 [C, h, w], t2 float32 [C, h, w], valid bool [h, w])``.
    """
    return to_unit_pair(pair, reader.read_window(pair.t1, window), reader.read_window(pair.t2, window))


def to_unit_pair(pair: ScenePair, raw1: tuple[np.ndarray, np.ndarray],
                 raw2: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`read_unit` of pixels already read: ``raw1``, ``raw2`` as the reader returns them.

    Args:
        pair: the scenes (their scales).
        raw1: t1's ``(raw [C, h, w], valid [h, w])``.
        raw2: t2's, the same window.

    Returns:
        ``(t1 float32 [C, h, w], t2 float32 [C, h, w], valid bool [h, w])``.
    """
    valid = raw1[1] & raw2[1]
    t1, t2 = to_unit(raw1[0], pair.t1.scale), to_unit(raw2[0], pair.t2.scale)
    t1[:, ~valid] = 0.0
    t2[:, ~valid] = 0.0
    return t1, t2, valid


def strips(core: Window, rows: int) -> list[Window]:
    """``core`` cut into strips of ``rows`` rows (the last one shorter).

    With ``rows`` a multiple of the statistics cell, a strip holds whole cells, so the
    per-cell sums do not depend on it.
    """
    return [Window(r, core.col, min(rows, core.row_stop - r), core.width)
            for r in range(core.row, core.row_stop, rows)]


@portable_errors
def fit_block(pair: ScenePair, core: Window, fit_round: FitRound, strip_rows: int) -> list[Any]:
    """One fit round over one block, strip by strip (the task run on a worker).

    Args:
        pair: the scenes.
        core: the block's own pixels.
        fit_round: the round (its ``halo`` is read around each strip).
        strip_rows: rows per strip (a multiple of the statistics cell).

    Returns:
        The round's parts for the block.
    """
    parts: list[Any] = []
    halo = fit_round.halo
    for strip in strips(core, strip_rows):
        window = Window(strip.row - halo, strip.col - halo, strip.height + 2 * halo, strip.width + 2 * halo)
        t1, t2, valid = read_unit(pair, window)
        parts.extend(fit_round.block(t1, t2, valid, window, strip))
    return parts


def fit_on_cluster(client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, *, token: str) -> FittedComparator:
    """Fit the run's comparator: one Dask task per block and round.

    Raises:
        InputError: the scene cannot be fitted (too few valid pixels, a constant band).
    """
    cores = [plan.block_at(i, j).core for i in range(plan.block_grid[0]) for j in range(plan.block_grid[1])]
    rounds = 0

    def run_round(fit_round: FitRound) -> Sequence[Any]:
        nonlocal rounds
        rounds += 1
        t0 = time.perf_counter()
        tasks = [
            dask.delayed(fit_block, pure=False)(pair, core, fit_round, cfg.tiling.chunk_size,
                                                dask_key_name=f"s2c-fit-{token}-{rounds}-{k}")
            for k, core in enumerate(cores)
        ]
        futures = client.compute(tasks, optimize_graph=False, retries=cfg.cluster.retries)
        try:
            parts = [part for fut in futures for part in fut.result()]
        except BaseException:
            client.cancel(futures)
            raise
        log.info("fit round %d (%s) over %d block(s): %.2f s", rounds, type(fit_round).__name__, len(cores),
                 time.perf_counter() - t0)
        return parts

    try:
        return fit_comparator(fit_settings(pair, cfg), run_round)
    except FitError as exc:
        raise InputError(f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r}: {exc}") from exc


def fit_tiles(plan: TilePlan, count: int) -> list[Window]:
    """``count`` tiles of the global grid spread evenly over the scene (raster order), for the DCVA fit."""
    origins = [(r, c) for r in plan.row_starts for c in plan.col_starts]
    return [Window(int(origins[k][0]), int(origins[k][1]), min(plan.tile, plan.height), min(plan.tile, plan.width))
            for k in spread(len(origins), count)]


def spread(total: int, count: int) -> list[int]:
    """``count`` of ``total`` items spread evenly, in order (all of them when there are no more).

    Example:
        >>> spread(10, 3), spread(2, 5)
        ([0, 3, 6], [0, 1])
    """
    return sorted({(k * total) // count for k in range(min(count, total))})


#: Pixels of a DCVA fit tile whose magnitude goes into the percentile: every 4th row and column.
_DCVA_STRIDE = 4


@portable_errors
def dcva_fit_tile(model: ModelConfig, pair: ScenePair, window: Window, layers: tuple[int, ...],
                  fitted: Any = None) -> Any:
    """One DCVA fit tile on a worker: channel sums (first round) or magnitudes of valid pixels (second).

    Args:
        model: the model config (its predictor, with the backbone, lives in the worker).
        pair: the scenes.
        window: the tile.
        layers: the taps compared.
        fitted: ``None`` in the first round; the selection (``DCVA``) in the second.
    """
    t1, t2, valid = read_unit(pair, window)
    return dcva_fit_part(worker_predictor(model), t1, t2, valid, layers, fitted)


def dcva_fit_part(predictor: Any, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, layers: tuple[int, ...],
                  fitted: Any = None) -> Any:
    """What one DCVA fit tile gives: channel sums (first round) or magnitudes of valid pixels (second).

    Args:
        predictor: a predictor with the backbone (``dcva_differences``).
        t1: float32 ``[3, h, w]`` in [0, 1] (0 where invalid).
        t2: float32 ``[3, h, w]``.
        valid: bool ``[h, w]``.
        layers: the taps compared.
        fitted: ``None`` in the first round; the selection (``DCVA``) in the second.
    """
    import torch

    from s2c_batch.kernels.comparators.learned.dcva import channel_sums, token_validity

    diffs = predictor.dcva_differences(t1[None], t2[None], layers)
    if fitted is None:
        tokens = token_validity(torch.from_numpy(valid)[None].to(diffs[0].device), diffs[0].shape[-1])
        return channel_sums(diffs, tokens)
    with torch.no_grad():
        s = fitted.upsampled(diffs, valid.shape)[0].cpu().numpy()
    step = _DCVA_STRIDE
    return s[::step, ::step][valid[::step, ::step]].astype(np.float64)


def fit_dcva_on_cluster(client: Any, pair: ScenePair, plan: TilePlan, cfg: Config, *, token: str,
                        gpu: bool = False) -> Any:
    """DCVA's channel selection and ``s_ref`` from ``dcva.fit_tiles`` tiles, run where the backbone is.

    Raises:
        InputError: the fit tiles hold no valid pixel.
    """
    tiles = fit_tiles(plan, cfg.dcva.fit_tiles)
    layers = tuple(cfg.dcva.layers)
    annotations = {"resources": {"GPU": 1}} if gpu else {}
    rounds = 0

    def run(fitted: Any) -> list[Any]:
        nonlocal rounds
        rounds += 1
        with dask.annotate(**annotations):
            tasks = [dask.delayed(dcva_fit_tile, pure=False)(cfg.model, pair, w, layers, fitted,
                                                            dask_key_name=f"s2c-dcva-{token}-{rounds}-{k}")
                     for k, w in enumerate(tiles)]
        futures = client.compute(tasks, optimize_graph=False, retries=cfg.cluster.retries)
        try:
            return list(client.gather(futures))  # in tile order: the same sums for any worker count
        except BaseException:
            client.cancel(futures)
            raise

    try:
        return fit_dcva(run, cfg)
    except ValueError as exc:
        raise InputError(f"t1 {pair.t1.path!r} and t2 {pair.t2.path!r}: {exc}") from exc


def fit_dcva(run_round: Callable[[Any], list[Any]], cfg: Config) -> Any:
    """DCVA's two rounds over its fit tiles: the channel selection, then ``s_ref``.

    Args:
        run_round: :func:`dcva_fit_part` of every fit tile, in a fixed order, given ``None``
            (the channel sums) or the selection (the magnitudes).
        cfg: the config (``dcva``, ``fit.percentile``).

    Returns:
        The fitted ``DCVA``.

    Raises:
        ValueError: the fit tiles hold no valid token or pixel.
    """
    from s2c_batch.kernels.comparators.learned.dcva import select_channels

    selection = select_channels(run_round(None), tuple(cfg.dcva.layers), cfg.dcva.features)
    magnitudes = np.concatenate(run_round(selection))
    if not len(magnitudes):
        raise ValueError("the DCVA fit tiles hold no valid pixel")
    reference = float(np.percentile(magnitudes, cfg.fit.percentile))
    return dataclasses.replace(selection, reference=reference if reference > 0 else 1.0)


def save_fit(out_dir: Location, fitted: RunComparator, fingerprint: str) -> None:
    """Write ``.s2c/fit.json`` (atomically; one PUT on object storage) with the run's fingerprint.

    Raises:
        OutputError: it cannot be written (names the file or URL and the fix).
    """
    doc = {"fingerprint": fingerprint, "parameters": fitted.to_json()}
    out_dir.save(f"{STATE_DIR}/{FIT_FILE}", json.dumps(doc, indent=1).encode())


def load_fit(out_dir: Location, fingerprint: str) -> RunComparator | None:
    """The parameters a previous attempt of this run fitted, or ``None``.

    ``None`` when there is no file, it is unreadable (a torn write), or it belongs to
    another fingerprint: the fit is then run again (it is deterministic, so the same
    pixels give the same parameters).
    """
    try:
        doc = json.loads(out_dir.read(f"{STATE_DIR}/{FIT_FILE}") or b"null")
        if doc.get("fingerprint") != fingerprint:
            return None
        return comparator_from_json(doc["parameters"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
