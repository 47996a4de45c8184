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
scene into cores of ``block`` pixels; a block computes every tile that touches
its core, so the result does not depend on the block size.
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
        return self.row + self.height

    @property
    def col_stop(self) -> int:
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


@dataclass(frozen=True)
class Block:
    """One output block: a core written to the products, and the tiles it computes.

    Attributes:
        index: (block row, block col) in the block grid.
        core: the pixels this block writes (its share of the output grid).
        read: union of its tiles (may reach past the scene for tiny scenes).
        tiles: tiles touching the core, in global row-major order.
    """

    index: tuple[int, int]
    core: Window
    read: Window
    tiles: tuple[Window, ...]


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
        if self.block < 1:
            raise ValueError(f"block must be >= 1, got {self.block!r}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @cached_property
    def row_starts(self) -> np.ndarray:
        return tile_starts(self.height, self.tile, self.overlap)

    @cached_property
    def col_starts(self) -> np.ndarray:
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
        return self.block_grid[0] * self.block_grid[1]

    def block_at(self, bi: int, bj: int) -> Block:
        """The block at block-grid position ``(bi, bj)``."""
        r0, c0 = bi * self.block, bj * self.block
        core = Window(r0, c0, min(self.block, self.height - r0), min(self.block, self.width - c0))
        rows = _touching(self.row_starts, self.tile, core.row, core.row_stop)
        cols = _touching(self.col_starts, self.tile, core.col, core.col_stop)
        tiles = tuple(Window(int(r), int(c), self.tile, self.tile) for r in rows for c in cols)
        read = Window(int(rows[0]), int(cols[0]), int(rows[-1]) + self.tile - int(rows[0]),
                      int(cols[-1]) + self.tile - int(cols[0]))
        return Block(index=(bi, bj), core=core, read=read, tiles=tiles)

    def blocks(self) -> list[Block]:
        """Every block, in row-major order."""
        nbi, nbj = self.block_grid
        return [self.block_at(bi, bj) for bi in range(nbi) for bj in range(nbj)]

    def tiles_computed(self) -> int:
        """Tiles computed over all blocks (tiles on block borders count once per block)."""
        nbi, nbj = self.block_grid
        per_row = [len(_touching(self.row_starts, self.tile, bi * self.block,
                                 min((bi + 1) * self.block, self.height))) for bi in range(nbi)]
        per_col = [len(_touching(self.col_starts, self.tile, bj * self.block,
                                 min((bj + 1) * self.block, self.width))) for bj in range(nbj)]
        return sum(per_row) * sum(per_col)

    def max_read_shape(self) -> tuple[int, int]:
        """Largest block read window (rows, cols): the per-task memory driver."""
        nbi, nbj = self.block_grid
        h = max(self.block_at(bi, 0).read.height for bi in range(nbi))
        w = max(self.block_at(0, bj).read.width for bj in range(nbj))
        return h, w


def _touching(starts: np.ndarray, tile: int, lo: int, hi: int) -> np.ndarray:
    """Tile starts whose span ``[s, s + tile)`` meets ``[lo, hi)``."""
    return starts[(starts < hi) & (starts + tile > lo)]


def _check(length: int, tile: int, overlap: int) -> None:
    if length < 1:
        raise ValueError(f"scene length must be >= 1, got {length!r}")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile!r}, overlap={overlap!r}")
