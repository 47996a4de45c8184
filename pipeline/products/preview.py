"""The quicklook's scene panels sampled by the block tasks, while the pixels are in memory.

A scene without overviews can only be decimated by decoding all of it: for a
16384 x 16384 RGB pair that is about 5.7 s of CPU in the client after the COGs, only to
keep one pixel in 32 x 32. The untiled block tasks already hold every pixel of both
dates, so each keeps the pixels of the panel that fall in its block (GDAL's nearest
decimation, :func:`~s2c_batch.kernels.raster.quicklook.sample_positions`) and returns
them with its report. When every block of the run reported its piece, the panels are
put together from them, equal to what :func:`~s2c_batch.pipeline.products.quicklook.read_scene_preview`
reads; otherwise (a resumed run that reused blocks, scenes with overviews or a warp)
the quicklook reads the scenes as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2c_batch.kernels.raster.quicklook import decimation, sample_positions, samples_within
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.inputs.remote import open_raster
from s2c_batch.pipeline.inputs.scene import Grid, SceneSource

#: Longest side of each of the quicklook's three panels, in pixels.
PANEL_SIDE = 512

#: A panel of one date: ``(data [C, h, w] in the file's dtype, 0 where invalid; valid bool [h, w])``.
Panel = tuple[np.ndarray, np.ndarray]


def panel_shape(grid: Grid, side: int = PANEL_SIDE) -> tuple[int, int]:
    """``(h, w)`` of the quicklook's panels for ``grid``."""
    return decimation(grid.shape, side)[1]


def sampled_from_files(source: SceneSource) -> bool:
    """Whether the quicklook reads ``source`` by sampling every pixel (no overviews, no warp).

    Only then do the block tasks' samples equal its read: overviews are read as they are,
    and a warped scene through its VRT.
    """
    if source.warp is not None:
        return False
    with open_raster(source.path, source.storage) as src:
        return not src.overviews(source.bands[0])


@dataclass(frozen=True)
class PreviewPiece:
    """The panel pixels of both dates that fall in one block.

    Attributes:
        rows: ``(start, stop)`` of the panel rows the block holds.
        cols: ``(start, stop)`` of the panel columns the block holds.
        t1: t1's panel pixels ``[C, rows, cols]`` and their validity ``[rows, cols]``.
        t2: the same for t2.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    t1: Panel
    t2: Panel


class PreviewSampler:
    """Collects one block's panel pixels from the windows its task reads (in order of rows).

    Args:
        grid_shape: ``(height, width)`` of the output grid.
        shape: ``(h, w)`` of the panels.
        core: the block's pixels.
    """

    def __init__(self, grid_shape: tuple[int, int], shape: tuple[int, int], core: Window) -> None:
        self._rows = sample_positions(grid_shape[0], shape[0])
        self._cols = sample_positions(grid_shape[1], shape[1])
        self._row_sel = samples_within(self._rows, core.row, core.row_stop)
        self._col_sel = samples_within(self._cols, core.col, core.col_stop)
        self._parts: list[tuple[Panel, Panel]] = []

    def add(self, rows: Window, window: Window, t1: Panel, t2: Panel) -> None:
        """Keep the panel pixels of the block rows ``rows``, read as ``window``.

        Args:
            rows: block rows (all the block's columns) whose samples are taken now.
            window: the window ``t1`` and ``t2`` were read as (``rows`` plus any halo).
            t1: ``(raw [C, h, w], valid [h, w])`` of ``window``, as the reader returns them.
            t2: the same for t2.
        """
        sel = samples_within(self._rows, rows.row, rows.row_stop)
        r = self._rows[sel] - window.row
        c = self._cols[self._col_sel] - window.col
        self._parts.append(tuple((data[:, r][:, :, c], valid[np.ix_(r, c)]) for data, valid in (t1, t2)))  # type: ignore[arg-type]

    def piece(self) -> PreviewPiece:
        """The block's piece, once every row of the block was added."""
        dates = []
        for k in range(2):
            data = np.concatenate([p[k][0] for p in self._parts], axis=1)
            valid = np.concatenate([p[k][1] for p in self._parts], axis=0)
            dates.append((data, valid))
        return PreviewPiece(rows=(self._row_sel.start, self._row_sel.stop),
                            cols=(self._col_sel.start, self._col_sel.stop), t1=dates[0], t2=dates[1])


def assemble(pieces: Sequence[PreviewPiece], shape: tuple[int, int]) -> tuple[Panel, Panel] | None:
    """Both dates' panels from the blocks' pieces, or ``None`` unless they cover every panel pixel once.

    Returns:
        ``(t1, t2)``, each ``(data [C, h, w], valid [h, w])``.
    """
    if not pieces:
        return None
    covered = np.zeros(shape, np.int32)
    for p in pieces:
        covered[slice(*p.rows), slice(*p.cols)] += 1
    if not (covered == 1).all():
        return None
    panels = []
    for date in ("t1", "t2"):
        first = getattr(pieces[0], date)[0]
        data = np.zeros((first.shape[0], *shape), first.dtype)
        valid = np.zeros(shape, bool)
        for p in pieces:
            d, v = getattr(p, date)
            data[:, slice(*p.rows), slice(*p.cols)] = d
            valid[slice(*p.rows), slice(*p.cols)] = v
        panels.append((data, valid))
    return panels[0], panels[1]
