"""The from/to summary of a run with class maps: what turned into what, in m2, without a GIS.

How it is counted: one Dask task per output block (:func:`count_after`) runs as soon as
that block's last write is done (the block task, or the mask passes that rewrite
``change_mask``), reads ``change_mask``, ``class_t1`` and ``class_t2`` of its window and
returns the block's ``[K, K]`` counts of changed pixels per (class at t1, class at t2)
(:func:`~s2c_batch.kernels.raster.transitions.transition_counts`); the driver adds the
blocks in block order. No process ever holds more than one block.

Areas: on a projected grid each count times the pixel's area (so the matrix adds up to the
changed area exactly); on a geographic grid each pixel weighted by its row's geodesic cell
area (:mod:`~s2c_batch.pipeline.products.area`).

What ``run.json`` gets (:meth:`Transitions.to_json`, :meth:`Transitions.summary`)::

    "transitions": {"classes": [...K names], "area_method": "planar",
                    "pixels": [[K x K]], "area_m2": [[K x K]]}     # rows = t1, columns = t2
    "summary": {"changed_pixels": n, "changed_area_m2": a,
                "by_target_class": {"building": {"changed_m2", "gained_m2", "lost_m2"}},
                "by_class_t2_m2": {"building": a, ...},
                "largest_transitions": [{"from", "to", "pixels", "area_m2", "share"}, ... 10]}

The STAC item holds the same under ``s2c:transitions`` and ``s2c:summary``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.kernels.raster.transitions import largest_transitions, transition_counts
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.products.area import is_geographic, planar_pixel_area_m2, row_areas_m2

#: Transitions listed in the summary.
TOP_TRANSITIONS = 10

#: Dask priority of the counting tasks: below the block tasks, as the polygon tasks.
COUNT_PRIORITY = -10


@dataclass(frozen=True)
class Transitions:
    """The transition matrix of a run: changed pixels and area per (class at t1, class at t2).

    Attributes:
        classes: the vocabulary's class names (``K``).
        pixels: int64 ``[K, K]`` changed pixels, rows = class at t1, columns = class at t2.
        area_m2: float64 ``[K, K]`` their ground area.
        area_method: ``planar`` or ``geodesic``.
    """

    classes: tuple[str, ...]
    pixels: np.ndarray
    area_m2: np.ndarray
    area_method: str

    def to_json(self) -> dict[str, Any]:
        """The matrix as ``run.json`` holds it (areas rounded to 1 cm2)."""
        return {
            "classes": list(self.classes),
            "area_method": self.area_method,
            "pixels": self.pixels.tolist(),
            "area_m2": np.round(self.area_m2, 4).tolist(),
        }

    def summary(self, targets: Sequence[int], n: int = TOP_TRANSITIONS) -> dict[str, Any]:
        """What an analyst reads without a GIS: changed area in all, per target class, the largest transitions.

        Args:
            targets: indexes of the run's target classes (``model.targets``).
            n: transitions listed.

        Returns:
            ``changed_pixels``, ``changed_area_m2``, ``by_target_class`` (per target class: the
            changed area where t1 or t2 is the class, ``gained_m2`` into it, ``lost_m2`` out of
            it), ``by_class_t2_m2`` (changed area per class at t2, classes with none left
            out) and ``largest_transitions``.
        """
        area, names = self.area_m2, self.classes
        total = float(area.sum())
        by_target = {}
        for c in targets:
            into, out, same = float(area[:, c].sum()), float(area[c, :].sum()), float(area[c, c])
            by_target[names[c]] = {"changed_m2": round(into + out - same, 4), "gained_m2": round(into - same, 4),
                                   "lost_m2": round(out - same, 4)}
        to_class = area.sum(axis=0)
        return {
            "changed_pixels": int(self.pixels.sum()),
            "changed_area_m2": round(total, 4),
            "area_method": self.area_method,
            "by_target_class": by_target,
            "by_class_t2_m2": {names[c]: round(float(v), 4) for c, v in enumerate(to_class) if v > 0},
            "largest_transitions": [
                {"from": names[i], "to": names[j], "pixels": int(self.pixels[i, j]),
                 "area_m2": round(float(area[i, j]), 4), "share": round(float(area[i, j]) / total, 6)}
                for i, j in largest_transitions(area, n)
            ],
        }


def count_block(store_path: store.StorePath, window: Window, *, n_classes: int,
                row_areas: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The transition counts of one window of the store (runs on a worker).

    Returns:
        ``(pixels, area)``, each ``[K, K]``; ``area`` is in pixels when ``row_areas`` is ``None``.
    """
    mask = store.read_window(store_path, "change_mask", window)
    if not (mask == 1).any():
        zeros = np.zeros((n_classes, n_classes), np.int64)
        return zeros, zeros.astype(np.float64)
    c1 = store.read_window(store_path, "class_t1", window)
    c2 = store.read_window(store_path, "class_t2", window)
    return transition_counts(mask, c1, c2, n_classes=n_classes, row_areas=row_areas)


def count_after(written: Any, store_path: store.StorePath, window: Window, *, n_classes: int,
                row_areas: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`count_block` once ``written`` (the task that last writes the block) has finished."""
    return count_block(store_path, window, n_classes=n_classes, row_areas=row_areas)


def submit_transitions(
    client: Any,
    store_path: store.StorePath,
    grid: Grid,
    *,
    block: int,
    n_classes: int,
    retries: int = 0,
    after: Mapping[tuple[int, int], Any] | None = None,
) -> list[Any]:
    """Submit one counting task per block, each behind the task that writes its block.

    Args:
        client: a ``distributed.Client``.
        store_path: the run's ``change.zarr`` (with class maps).
        grid: the output grid.
        block: block side (``tiling.block_size``).
        n_classes: the vocabulary's size.
        retries: task retries.
        after: block index -> the future of the task that last writes that block; blocks
            not named are already in the store.

    Returns:
        The futures, in block order (row-major), for :func:`gather_transitions`.
    """
    after = after or {}
    target = as_location(store_path)
    geodesic = is_geographic(grid)
    futures = []
    for bi, r in enumerate(range(0, grid.height, block)):
        for bj, c in enumerate(range(0, grid.width, block)):
            win = Window(r, c, min(block, grid.height - r), min(block, grid.width - c))
            rows = row_areas_m2(grid, np.arange(r, r + win.height)) if geodesic else None
            futures.append(client.submit(count_after, after.get((bi, bj)), target, win, n_classes=n_classes,
                                         row_areas=rows, pure=False, retries=retries, priority=COUNT_PRIORITY))
    return futures


def gather_transitions(client: Any, futures: Sequence[Any], class_names: Sequence[str], grid: Grid) -> Transitions:
    """Add up the blocks' counts (in block order) into the run's transition matrix."""
    k = len(class_names)
    pixels = np.zeros((k, k), np.int64)
    area = np.zeros((k, k), np.float64)
    for p, a in client.gather(list(futures)):
        pixels += p
        area += a
    geodesic = is_geographic(grid)
    if not geodesic:
        area = (pixels * planar_pixel_area_m2(grid)).astype(np.float64)
    return Transitions(tuple(class_names), pixels, area, "geodesic" if geodesic else "planar")
