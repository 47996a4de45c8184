"""The untiled path: comparators that need no tiles predict whole blocks.

A pointwise comparator (CVA, IR-MAD) or one with a small neighbourhood (PCA-KMeans)
gives every pixel the same value whatever window it is computed in, as long as the
window reaches the neighbourhood. So its block task reads the block's core plus a
halo of ``support.radius`` pixels, in strips of rows, computes the probability with
the fitted comparator, crops the core, encodes and writes it: no tiles, no blending,
no partial sums exchanged between blocks. One task per block.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from distributed import get_worker

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.raster.encode import encode_products
from s2c_batch.kernels.raster.otsu import level_histogram
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.cluster.progress import task_progress
from s2c_batch.pipeline.errors import portable_errors
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.products.preview import PreviewSampler
from s2c_batch.pipeline.run.fit import strips, to_unit_pair
from s2c_batch.pipeline.run.worker import BlockReport


@dataclass(frozen=True)
class UntiledJob:
    """What an untiled block task needs; small and picklable.

    Attributes:
        index: block index.
        pair: the scenes.
        core: the block's pixels.
        comparator: the fitted comparator.
        threshold: the mask threshold, or ``None`` when Otsu's is chosen after the blocks.
        store: the Zarr store.
        strip_rows: rows read at a time.
        preview: ``(h, w)`` of the quicklook's panels when the task keeps their pixels
            (:mod:`~s2c_batch.pipeline.products.preview`); ``None``: it does not.
    """

    index: tuple[int, int]
    pair: ScenePair
    core: Window
    comparator: FittedComparator
    threshold: float | None
    store: store.StorePath
    strip_rows: int
    preview: tuple[int, int] | None = None


@portable_errors
def compare_block(job: UntiledJob) -> BlockReport:
    """Predict, encode and write one block (the task run on a worker).

    Returns:
        The block's report; with Otsu, the histogram of its encoded probabilities; with
        ``job.preview``, the quicklook's pixels in the block.
    """
    t0 = time.perf_counter()
    radius = job.comparator.support.radius
    core = job.core
    prob = np.empty((core.height, core.width), np.float32)
    valid = np.empty((core.height, core.width), bool)
    sampler = PreviewSampler(job.pair.grid.shape, job.preview, core) if job.preview else None
    progress = task_progress("strips compared")
    todo = strips(core, job.strip_rows)
    for n, strip in enumerate(todo, 1):
        window = Window(strip.row - radius, strip.col - radius, strip.height + 2 * radius,
                        strip.width + 2 * radius)
        raw1, raw2 = reader.read_window(job.pair.t1, window), reader.read_window(job.pair.t2, window)
        if sampler is not None:
            sampler.add(strip, window, raw1, raw2)
        t1, t2, ok = to_unit_pair(job.pair, raw1, raw2)
        p = job.comparator.probability(t1, t2, ok)
        inner = (slice(radius, radius + strip.height), slice(radius, radius + strip.width))
        rows = slice(strip.row - core.row, strip.row_stop - core.row)
        prob[rows] = p[inner]
        valid[rows] = ok[inner]
        progress.step(n, len(todo))
    arrays = encode_products(prob, valid, threshold=job.threshold)
    store.write_block(job.store, core, arrays,
                      on_written=lambda done, total: progress.step(done, total, "products written"))
    histogram = tuple(int(v) for v in level_histogram(arrays["change_prob"])) if job.threshold is None else None
    try:
        wname = str(get_worker().name)
    except ValueError:
        wname = f"pid-{os.getpid()}"
    return BlockReport(index=job.index, valid_pixels=int(valid.sum()), write_s=time.perf_counter() - t0,
                       worker=wname, histogram=histogram, preview=sampler.piece() if sampler else None)
