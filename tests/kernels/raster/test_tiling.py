"""Pure tiling maths: literal cases plus hypothesis properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2c_batch.kernels.raster.tiling import (
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


def test_plan__block_owns_tiles_starting_in_its_core() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    b = plan.block_at(1, 1)
    assert b.core == Window(512, 512, 512, 512)
    assert [t.row for t in b.tiles][:1] == [576] and all(512 <= t.col < 1024 for t in b.tiles)
    assert b.read == Window(576, 576, 524, 640)  # rows 576..1100 (flush tile at 844), cols 576..1216
    assert b.region == Window(512, 512, 588, 768)  # core + tile-wide skirt, clipped to the scene


def test_plan__thin_last_block_owns_no_tile() -> None:
    plan = TilePlan(1100, 600, 256, 64, 512)
    last = plan.block_at(2, 0)
    assert last.core.height == 76 and last.tiles == () and last.read is None


def test_plan__sources_and_destinations() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    assert plan.sources(0, 0) == [(0, 0)]
    assert plan.sources(1, 2) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert plan.destinations(2, 2) == [(2, 2)]
    assert plan.destinations(0, 0) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_plan__block_smaller_than_tile_refused() -> None:
    with pytest.raises(ValueError, match="must be >= tile"):
        TilePlan(1000, 1000, 512, 128, 256)


def test_plan__tiles_computed_once() -> None:
    plan = TilePlan(1100, 1300, 256, 64, 512)
    assert plan.tiles_computed() == sum(len(b.tiles) for b in plan.blocks()) == plan.n_tiles


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


@settings(max_examples=25, deadline=None)
@given(shape=shapes, tiling=tilings, extra=st.integers(0, 300))
def test_blocks__each_tile_owned_once_and_sources_hold_every_tile_of_a_core(
    shape: tuple[int, int], tiling: tuple[int, int], extra: int
) -> None:
    tile, overlap = tiling
    plan = TilePlan(shape[0], shape[1], tile, overlap, tile + extra)
    owned = [t for b in plan.blocks() for t in b.tiles]
    everything = [Window(int(r), int(c), tile, tile) for r in plan.row_starts for c in plan.col_starts]
    assert sorted(owned) == sorted(everything)
    for b in plan.blocks()[:6]:
        reaching = {t for s in plan.sources(*b.index) for t in plan.block_at(*s).tiles}
        touching = {t for t in everything if t.intersection(b.core) is not None}
        assert touching <= reaching
