"""Pure tiling maths: the global tile grid, output blocks with halos, blend weights.

Everything here works on integers and small immutable types; nothing reads
pixels. Coordinates are (row, col) pixel offsets in the output grid.

The tile grid is *global*: along an axis of length ``L`` with tile ``T`` and
overlap ``O`` (stride ``S = T - O``), tiles start at ``0, S, 2S, ...`` while they
end before ``L``, and the last tile sits flush to the edge at ``L - T``::

    n_tiles(L) = 1                          if L <= T
               = ceil((L - T) / S) + 1      otherwise

A scene smaller than one tile gets one tile starting at 0 that reaches past the
edge (the reader pads it and marks the padding invalid). Output blocks cut the
scene into cores of ``block`` pixels (``block >= tile``). Every tile is computed
exactly once, by the block that *owns* it (the block whose core holds the
tile's first pixel); its footprint reaches at most ``tile`` pixels past the core
into the right, bottom and bottom-right neighbours (the block's *skirt*). A
block's output is therefore the sum over the tiles of at most four blocks:
itself and its left, top and top-left neighbours (:meth:`TilePlan.sources`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True, order=True)
class Window:
    """A rectangle of pixels: rows ``[row, row + height)``, cols ``[col, col + width)``."""

    row: int
    col: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        """First row after the window."""
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        """First column after the window."""
        return self.col + self.width

    def slices(self, origin: tuple[int, int] = (0, 0)) -> tuple[slice, slice]:
        """Row and column slices of this window relative to ``origin`` (row, col)."""
        r, c = self.row - origin[0], self.col - origin[1]
        return slice(r, r + self.height), slice(c, c + self.width)

    def intersection(self, other: Window) -> Window | None:
        """The overlap of two windows, or ``None`` when they do not overlap."""
        r0, c0 = max(self.row, other.row), max(self.col, other.col)
        r1, c1 = min(self.row_stop, other.row_stop), min(self.col_stop, other.col_stop)
        if r1 <= r0 or c1 <= c0:
            return None
        return Window(r0, c0, r1 - r0, c1 - c0)


def n_tiles(length: int, tile: int, overlap: int) -> int:
    """Number of tiles along one axis: ``1`` if ``length <= tile`` else ``ceil((length - tile) / stride) + 1``.

    Example:
        >>> n_tiles(1000, 512, 128), n_tiles(512, 512, 128), n_tiles(100, 512, 128)
        (3, 1, 1)
    """
    _check(length, tile, overlap)
    if length <= tile:
        return 1
    return math.ceil((length - tile) / (tile - overlap)) + 1


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Tile start offsets along one axis; the last tile is flush to the edge.

    Example:
        >>> tile_starts(1000, 512, 128).tolist()
        [0, 384, 488]
    """
    n = n_tiles(length, tile, overlap)
    starts = np.arange(n, dtype=np.int64) * (tile - overlap)
    if length > tile:
        starts[-1] = length - tile
    return starts


def ramp(overlap: int) -> np.ndarray:
    """Raised-cosine ramp of ``overlap`` values strictly inside (0, 1).

    ``r[i] = (1 - cos(pi * (i + 1) / (overlap + 1))) / 2``; the 0 and 1 endpoints
    are skipped, so a ramp and its mirror sum to 1 and no weight is ever 0.

    Example:
        >>> ramp(3).round(3).tolist()
        [0.146, 0.5, 0.854]
    """
    i = np.arange(overlap, dtype=np.float64)
    return ((1.0 - np.cos(np.pi * (i + 1) / (overlap + 1))) / 2.0).astype(np.float32)


def axis_weight(start: int, length: int, tile: int, overlap: int) -> np.ndarray:
    """1-D blend weight of a tile starting at ``start`` on an axis of ``length``.

    Ramps of ``overlap`` pixels at both ends, switched off at an end that touches
    the scene edge (start 0, or end at or past ``length``). Always > 0.

    Returns:
        float32 ``[tile]``.
    """
    w = np.ones(tile, dtype=np.float32)
    if overlap == 0:
        return w
    r = ramp(overlap)
    if start > 0:
        w[:overlap] = np.minimum(w[:overlap], r)
    if start + tile < length:
        w[tile - overlap :] = np.minimum(w[tile - overlap :], r[::-1])
    return w


def tile_weight(tile_window: Window, shape: tuple[int, int], overlap: int) -> np.ndarray:
    """2-D blend weight of a tile: outer product of the row and column weights.

    Args:
        tile_window: the tile in scene coordinates (``height == width == tile``).
        shape: scene ``(height, width)``.
        overlap: tile overlap in pixels.

    Returns:
        float32 ``[tile, tile]``, every value > 0.
    """
    wy = axis_weight(tile_window.row, shape[0], tile_window.height, overlap)
    wx = axis_weight(tile_window.col, shape[1], tile_window.width, overlap)
    return np.outer(wy, wx)


def axis_cores(length: int, tile: int, overlap: int) -> np.ndarray:
    """Each tile's *core* along one axis: the pixels nearer its middle than any other tile's.

    Cores cut the axis at the middle of each overlap,
    ``c_i = (s_i + s_(i-1) + tile) // 2``, from 0 to ``length``: they partition the axis,
    and each lies inside its tile.

    Returns:
        int64 ``[n_tiles, 2]``: ``(start, stop)`` of each core.

    Example:
        >>> axis_cores(1000, 512, 128).tolist()
        [[0, 448], [448, 692], [692, 1000]]
    """
    starts = tile_starts(length, tile, overlap)
    cuts = [(int(starts[i]) + int(starts[i - 1]) + tile) // 2 for i in range(1, len(starts))]
    bounds = np.array([0, *cuts, length], dtype=np.int64)
    return np.stack([bounds[:-1], bounds[1:]], axis=1)


def tile_core(tile_window: Window, shape: tuple[int, int], overlap: int) -> Window:
    """The core of a tile of the global grid (see :func:`axis_cores`), in scene coordinates.

    Mask-level comparators decide an object in the tile whose core holds its centroid.

    Args:
        tile_window: a tile of the grid (``height == width == tile``).
        shape: scene ``(height, width)``.
        overlap: tile overlap.
    """
    spans = []
    for start, length in ((tile_window.row, shape[0]), (tile_window.col, shape[1])):
        cores = axis_cores(length, tile_window.height, overlap)
        starts = tile_starts(length, tile_window.height, overlap)
        i = int(np.flatnonzero(starts == start)[0])
        spans.append((int(cores[i, 0]), int(cores[i, 1])))
    (r0, r1), (c0, c1) = spans
    return Window(r0, c0, r1 - r0, c1 - c0)


@dataclass(frozen=True)
class Block:
    """One output block: the pixels it writes and the tiles it owns.

    Attributes:
        index: (block row, block col) in the block grid.
        core: the pixels this block writes (its share of the output grid).
        tiles: tiles whose first pixel lies in the core, in global row-major
            order (may be empty for a thin last block).
        tile_ids: global id of each tile (``row_index * tiles_per_row + col_index``).
        read: union of its tiles (may reach past the scene for tiny scenes);
            ``None`` when it owns no tile.
        region: core plus the skirt its tiles reach, clipped to the scene.
    """

    index: tuple[int, int]
    core: Window
    tiles: tuple[Window, ...]
    tile_ids: tuple[int, ...]
    read: Window | None
    region: Window


@dataclass(frozen=True)
class TilePlan:
    """The tile grid of a scene and its grouping into output blocks.

    Args:
        height: scene rows.
        width: scene columns.
        tile: tile side.
        overlap: tile overlap.
        block: output block side.
    """

    height: int
    width: int
    tile: int
    overlap: int
    block: int

    def __post_init__(self) -> None:
        _check(self.height, self.tile, self.overlap)
        _check(self.width, self.tile, self.overlap)
        if self.block < self.tile:
            raise ValueError(f"block ({self.block!r}) must be >= tile ({self.tile!r})")

    @property
    def shape(self) -> tuple[int, int]:
        """Scene ``(height, width)``."""
        return (self.height, self.width)

    @cached_property
    def row_starts(self) -> np.ndarray:
        """First row of every tile row of the global grid."""
        return tile_starts(self.height, self.tile, self.overlap)

    @cached_property
    def col_starts(self) -> np.ndarray:
        """First column of every tile column of the global grid."""
        return tile_starts(self.width, self.tile, self.overlap)

    @property
    def n_tiles(self) -> int:
        """Tiles in the whole scene (each counted once)."""
        return len(self.row_starts) * len(self.col_starts)

    @property
    def block_grid(self) -> tuple[int, int]:
        """Blocks per axis: ``ceil(height / block), ceil(width / block)``."""
        return (-(-self.height // self.block), -(-self.width // self.block))

    @property
    def n_blocks(self) -> int:
        """Output blocks in the scene."""
        return self.block_grid[0] * self.block_grid[1]

    def block_at(self, bi: int, bj: int) -> Block:
        """The block at block-grid position ``(bi, bj)``."""
        r0, c0 = bi * self.block, bj * self.block
        core = Window(r0, c0, min(self.block, self.height - r0), min(self.block, self.width - c0))
        ri = np.flatnonzero((self.row_starts >= core.row) & (self.row_starts < core.row_stop))
        ci = np.flatnonzero((self.col_starts >= core.col) & (self.col_starts < core.col_stop))
        ncols = len(self.col_starts)
        tiles = tuple(Window(int(self.row_starts[r]), int(self.col_starts[c]), self.tile, self.tile)
                      for r in ri for c in ci)
        ids = tuple(int(r * ncols + c) for r in ri for c in ci)
        region = Window(r0, c0, min(core.row_stop + self.tile, self.height) - r0,
                        min(core.col_stop + self.tile, self.width) - c0)
        read = None
        if tiles:
            read = Window(tiles[0].row, tiles[0].col, tiles[-1].row_stop - tiles[0].row,
                          tiles[-1].col_stop - tiles[0].col)
        return Block(index=(bi, bj), core=core, tiles=tiles, tile_ids=ids, read=read, region=region)

    def blocks(self) -> list[Block]:
        """Every block, in row-major order."""
        nbi, nbj = self.block_grid
        return [self.block_at(bi, bj) for bi in range(nbi) for bj in range(nbj)]

    def sources(self, bi: int, bj: int) -> list[tuple[int, int]]:
        """Blocks whose tiles reach block ``(bi, bj)``, in summation order.

        Top-left, top, left, then the block itself (those that exist). Since
        ``block >= tile``, no other block's tiles reach it.
        """
        cand = [(bi - 1, bj - 1), (bi - 1, bj), (bi, bj - 1), (bi, bj)]
        return [(i, j) for i, j in cand if i >= 0 and j >= 0]

    def destinations(self, bi: int, bj: int) -> list[tuple[int, int]]:
        """Blocks whose core the tiles of block ``(bi, bj)`` reach (itself first)."""
        nbi, nbj = self.block_grid
        cand = [(bi, bj), (bi, bj + 1), (bi + 1, bj), (bi + 1, bj + 1)]
        return [(i, j) for i, j in cand if i < nbi and j < nbj]

    def tiles_computed(self) -> int:
        """Tiles computed over all blocks: each tile once, by its owner."""
        return self.n_tiles

    def max_read_shape(self) -> tuple[int, int]:
        """Largest block read window (rows, cols): the per-task memory driver."""
        nbi, nbj = self.block_grid
        hs = [b.read.height for b in (self.block_at(i, 0) for i in range(nbi)) if b.read]
        ws = [b.read.width for b in (self.block_at(0, j) for j in range(nbj)) if b.read]
        return max(hs), max(ws)


def _check(length: int, tile: int, overlap: int) -> None:
    if length < 1:
        raise ValueError(f"scene length must be >= 1, got {length!r}")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile!r}, overlap={overlap!r}")
