"""A minimum mapping unit for one block: measure its changed regions, drop the small ones.

Pure numpy. The pipeline (:mod:`s2c_batch.pipeline.run.mmu`) labels each block's
4-connected regions (:func:`~s2c_batch.kernels.raster.regions.label_regions`), measures
every piece (:func:`piece_areas`), glues the pieces of a region across block seams as
the polygons do (:func:`~s2c_batch.kernels.raster.regions.seam_pairs`,
:func:`~s2c_batch.kernels.raster.regions.group_ids`), decides on the whole region's area
(:func:`small_regions`) and then clears, block by block, the pieces of the regions below
the unit (:func:`clear_labels`). Labelling is deterministic, so the block read again
in the second pass has the same labels.

Example:
    >>> mask = np.array([[1, 0, 1, 1]], np.uint8)
    >>> labels = np.array([[1, 0, 2, 2]], np.int32)
    >>> clear_labels(mask, labels, np.array([True, False])).tolist()
    [[0, 0, 1, 1]]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from s2c_batch.kernels.raster.regions import group_ids, seam_pairs

#: A block's labels on its four edges: ``(top, bottom, left, right)``, int ``[w]``, ``[w]``, ``[h]``, ``[h]``.
Edges = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def piece_areas(labels: np.ndarray, n: int, row_areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and ground area of every labelled piece of a block.

    Args:
        labels: int32 ``[h, w]``, 0 outside regions, ``1..n`` inside.
        n: number of labels.
        row_areas: float64 ``[h]`` area in m2 of one pixel of each row of the block.

    Returns:
        ``(pixels, area)``: int64 and float64 ``[n]`` (row ``i`` = label ``i + 1``).
    """
    inside = labels > 0
    idx = labels[inside].astype(np.int64) - 1
    rows = np.nonzero(inside)[0]
    pixels = np.bincount(idx, minlength=n).astype(np.int64)
    area = np.bincount(idx, weights=np.asarray(row_areas, np.float64)[rows], minlength=n)
    return pixels, area


def small_regions(areas: np.ndarray, min_area: float) -> np.ndarray:
    """Which regions are below the unit: bool ``[G]``, ``area < min_area`` (a region of exactly the unit stays).

    Example:
        >>> small_regions(np.array([1.0, 2.0, 3.0]), 2.0).tolist()
        [True, False, False]
    """
    return np.asarray(areas, np.float64) < float(min_area)


def clear_labels(mask: np.ndarray, labels: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """The block's mask with the pieces of dropped regions set to 0 (no change); nodata stays.

    Args:
        mask: uint8 ``[h, w]`` change mask.
        labels: int32 ``[h, w]`` its labels (``1..n``).
        drop: bool ``[n]``: whether label ``i + 1`` is dropped.

    Returns:
        uint8 ``[h, w]``, a new array.
    """
    table = np.concatenate([[False], np.asarray(drop, bool)])
    out = mask.copy()
    out[table[labels]] = 0
    return out


def block_groups(sizes: Mapping[tuple[int, int], int],
                 edges: Mapping[tuple[int, int], Edges]) -> tuple[dict[tuple[int, int], int], np.ndarray]:
    """Glue the labelled pieces of every block into regions across block seams.

    Pieces are numbered block after block in block order (row-major), labels ``1..n`` of a
    block at its offset; two pieces belong to one region when they share a pixel edge
    across a seam (4-connectivity, as the labels).

    Args:
        sizes: block index -> number of labels of that block.
        edges: block index -> its labels on its four edges.

    Returns:
        ``(offsets, groups)``: each block's first piece number, and int64 ``[pieces]``
        the region of each piece, ``0..G-1``.

    Example:
        >>> e = lambda top, bottom, left, right: tuple(np.array(v) for v in (top, bottom, left, right))
        >>> offsets, groups = block_groups({(0, 0): 1, (0, 1): 2},
        ...                                {(0, 0): e([1], [1], [1], [1]), (0, 1): e([1], [2], [1], [2])})
        >>> offsets, groups.tolist()
        ({(0, 0): 0, (0, 1): 1}, [0, 0, 1])
    """
    offsets: dict[tuple[int, int], int] = {}
    total = 0
    for index in sorted(sizes):
        offsets[index] = total
        total += sizes[index]
    links = []
    for (i, j), (_, bottom, _, right) in sorted(edges.items()):
        for other, mine, side in (((i, j + 1), right, 2), ((i + 1, j), bottom, 0)):
            if other not in edges:
                continue
            pairs = seam_pairs(mine, edges[other][side])
            if len(pairs):
                links.append(np.stack([pairs[:, 0] - 1 + offsets[(i, j)], pairs[:, 1] - 1 + offsets[other]], axis=1))
    return offsets, group_ids(total, np.concatenate(links) if links else np.zeros((0, 2), np.int64))
