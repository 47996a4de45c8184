"""``model.threshold: otsu``: the scene's threshold, then ``change_mask`` written from the store.

The block tasks write ``change_prob`` only and report the histogram of its levels
(reused blocks of a resumed run are counted from the store). The client adds the
histograms and picks Otsu's level ``k``
(:func:`~s2c_batch.kernels.raster.otsu.otsu_level`); then one cheap task per block
reads ``change_prob`` (and the class maps, with target classes) from the store and
writes ``change_mask = change_prob >= k`` (where t1 or t2 is a target). The pass is
idempotent, so an interrupted run redoes it whole on ``--resume``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from dask.delayed import Delayed

from s2c_batch.kernels.raster.encode import NODATA, target_change
from s2c_batch.kernels.raster.otsu import LEVELS, level_histogram, otsu_level
from s2c_batch.kernels.raster.tiling import TilePlan, Window
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.output import store

log = logging.getLogger(__name__)


def block_histogram(store_path: store.StorePath, core: Window) -> tuple[int, ...]:
    """Histogram of one written block's ``change_prob`` levels (a task)."""
    return tuple(int(v) for v in level_histogram(store.read_window(store_path, "change_prob", core)))


def scene_histogram(client: Any, store_path: store.StorePath, plan: TilePlan, reported: Iterable[Sequence[int]],
                    reused: Iterable[tuple[int, int]], *, token: str, retries: int) -> np.ndarray:
    """The scene's histogram: the block tasks' reports plus the reused blocks read from the store.

    Returns:
        int64 ``[255]``.
    """
    total = np.zeros(LEVELS, np.int64)
    for hist in reported:
        total += np.asarray(hist, np.int64)
    tasks = [dask.delayed(block_histogram, pure=False)(store_path, plan.block_at(r, c).core,
                                                      dask_key_name=f"s2c-hist-{token}-{r}-{c}")
             for r, c in sorted(reused)]
    if tasks:
        for hist in client.gather(client.compute(tasks, optimize_graph=False, retries=retries)):
            total += np.asarray(hist, np.int64)
    return total


@dataclass(frozen=True)
class MaskJob:
    """What a mask task needs.

    Attributes:
        core: the block.
        store: the Zarr store.
        level: first changed level of ``change_prob``.
        targets: target class indexes (empty = every change counts).
        with_classes: the store holds class maps.
    """

    core: Window
    store: store.StorePath
    level: int
    targets: tuple[int, ...]
    with_classes: bool


def write_mask(job: MaskJob) -> int:
    """Write one block's ``change_mask`` from its stored ``change_prob`` (a task).

    Returns:
        Changed pixels of the block.
    """
    prob = store.read_window(job.store, "change_prob", job.core)
    ok = prob != NODATA
    change = prob >= job.level
    if job.with_classes and job.targets:
        cls1 = store.read_window(job.store, "class_t1", job.core)
        cls2 = store.read_window(job.store, "class_t2", job.core)
        change &= target_change(cls1, cls2, job.targets)
    change &= ok
    mask = change.astype(np.uint8)
    mask[~ok] = NODATA
    store.write_block(job.store, job.core, {"change_mask": mask})
    return int(change.sum())


def build_mask_graph(plan: TilePlan, store_path: store.StorePath, level: int, targets: tuple[int, ...], *,
                     with_classes: bool, token: str) -> dict[tuple[int, int], Delayed]:
    """One mask task per block of the scene, by block index."""
    nbi, nbj = plan.block_grid
    return {
        (r, c): dask.delayed(write_mask, pure=False)(
            MaskJob(core=plan.block_at(r, c).core, store=store_path, level=level, targets=targets,
                    with_classes=with_classes),
            dask_key_name=f"s2c-mask-{token}-{r}-{c}")
        for r in range(nbi) for c in range(nbj)
    }


@dataclass(frozen=True)
class OtsuResult:
    """The chosen threshold, for ``run.json``, the store and the STAC item.

    Attributes:
        level: first changed level ``k`` of the encoded ``change_prob``.
        value: ``k / 254``, the probability of that level.
        valid_pixels: pixels the histogram counts.
    """

    level: int
    value: float
    valid_pixels: int

    def to_json(self) -> dict[str, Any]:
        """As recorded in ``run.json``."""
        return {"method": "otsu", "level": self.level, "value": self.value, "valid_pixels": self.valid_pixels}


def choose_threshold(histogram: np.ndarray, *, ignore_zero: bool = False) -> OtsuResult:
    """Otsu's level of the scene histogram.

    Args:
        histogram: int64 ``[255]``, pixels per level.
        ignore_zero: leave level 0 out (UCD-SCM pools only the non-zero distances); the
            chosen level is then at least 1.
    """
    if ignore_zero and histogram[1:].sum():
        histogram = np.concatenate([[0], histogram[1:]])
    level = otsu_level(histogram)
    result = OtsuResult(level=level, value=round(level / 254, 6), valid_pixels=int(histogram.sum()))
    log.info("Otsu threshold: level %d (p >= %.4f) over %d valid pixels", level, result.value,
             result.valid_pixels)
    return result


def target_classes(cfg: Config) -> tuple[int, ...]:
    """The indexes of the target classes the mask is restricted to.

    Empty without an identifier, and for the mask-level comparators, which decide the
    change of the targets themselves (as their predictor's ``target_classes``).
    """
    if cfg.model.identifier == "none" or cfg.model.mask_level:
        return ()
    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary

    vocab = load_vocabulary(cfg.model.vocab)
    if cfg.model.targets:
        vocab = vocab.with_targets(cfg.model.targets)
    return tuple(vocab.targets)


def submit_masks(client: Any, tasks: Mapping[tuple[int, int], Delayed], retries: int) -> dict[tuple[int, int], Any]:
    """Start the mask tasks; block index -> future."""
    t0 = time.perf_counter()
    futures = client.compute(list(tasks.values()), optimize_graph=False, retries=retries)
    log.debug("submitted %d mask task(s) in %.3f s", len(futures), time.perf_counter() - t0)
    return dict(zip(tasks, futures, strict=True))
