"""Pure tiling maths: literal cases plus hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2c_batch.kernels.tiling import (
    TilePlan,
    Window,
    axis_weight,
    n_tiles,
    ramp,
    tile_starts,
    tile_weight,
)


def test_tile_starts__last_tile_flush_to_edge() -> None:
    assert tile_starts(1000, 512, 128).tolist() == [0, 384, 488]
    assert tile_starts(896, 512, 128).tolist() == [0, 384]
    assert tile_starts(512, 512, 128).tolist() == [0]


def test_tile_starts__scene_smaller_than_tile_gets_one_padded_tile() -> None:
    assert tile_starts(100, 512, 128).tolist() == [0]
    assert n_tiles(100, 512, 128) == 1


def test_n_tiles__formula() -> None:
    assert n_tiles(1000, 512, 128) == 3
    assert n_tiles(20000, 512, 128) == 52


def test_n_tiles__bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="overlap < tile"):
        n_tiles(100, 64, 64)
    with pytest.raises(ValueError, match="scene length"):
        n_tiles(0, 64, 8)


def test_ramp__strictly_inside_unit_interval_and_mirrors_sum_to_one() -> None:
    r = ramp(7)
    assert (r > 0).all() and (r < 1).all()
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)


def test_axis_weight__ramps_switched_off_at_scene_edges() -> None:
    first = axis_weight(0, 1000, 512, 128)
    assert first[0] == 1.0 and first[-1] < 1.0
    last = axis_weight(488, 1000, 512, 128)
    assert last[-1] == 1.0 and last[0] < 1.0
    alone = axis_weight(0, 100, 512, 128)
    assert (alone == 1.0).all()


def test_axis_weight__no_overlap_is_flat() -> None:
    assert (axis_weight(64, 1000, 64, 0) == 1.0).all()


def test_plan__blocks_partition_the_scene() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    assert plan.block_grid == (3, 3)
    cover = np.zeros(plan.shape, int)
    for b in plan.blocks():
        cover[b.core.slices()] += 1
    assert (cover == 1).all()


def test_plan__block_tiles_touch_core_and_read_is_their_union() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    b = plan.block_at(1, 1)
    assert b.core == Window(512, 512, 512, 512)
    assert all(t.intersection(b.core) is not None for t in b.tiles)
    assert b.read.row == min(t.row for t in b.tiles)
    assert b.read.row_stop == max(t.row_stop for t in b.tiles)


def test_plan__tiles_computed_counts_border_tiles_per_block() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    assert plan.tiles_computed() == sum(len(b.tiles) for b in plan.blocks())
    assert plan.tiles_computed() >= plan.n_tiles


def test_window__intersection() -> None:
    assert Window(0, 0, 10, 10).intersection(Window(5, 5, 10, 10)) == Window(5, 5, 5, 5)
    assert Window(0, 0, 10, 10).intersection(Window(10, 0, 5, 5)) is None


shapes = st.tuples(st.integers(1, 900), st.integers(1, 900))
tilings = st.integers(8, 128).flatmap(lambda t: st.tuples(st.just(t), st.integers(0, t - 1)))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, tiling=tilings)
def test_tile_grid__covers_every_pixel_with_positive_weight(shape: tuple[int, int],
                                                            tiling: tuple[int, int]) -> None:
    tile, overlap = tiling
    plan = TilePlan(shape[0], shape[1], tile, overlap, 10_000)
    wsum = np.zeros((max(shape[0], tile), max(shape[1], tile)), np.float64)
    for r in plan.row_starts:
        for c in plan.col_starts:
            w = tile_weight(Window(int(r), int(c), tile, tile), shape, overlap)
            assert (w > 0).all()
            wsum[r : r + tile, c : c + tile] += w
    assert (wsum[: shape[0], : shape[1]] > 0).all()


@settings(max_examples=40, deadline=None)
@given(shape=shapes, tiling=tilings, block=st.integers(16, 400))
def test_blocks__tiles_touching_each_pixel_do_not_depend_on_block_size(
    shape: tuple[int, int], tiling: tuple[int, int], block: int
) -> None:
    tile, overlap = tiling
    whole = TilePlan(shape[0], shape[1], tile, overlap, 10_000).block_at(0, 0)
    plan = TilePlan(shape[0], shape[1], tile, overlap, block)
    for b in plan.blocks()[:6]:
        expected = [t for t in whole.tiles if t.intersection(b.core) is not None]
        assert list(b.tiles) == expected
