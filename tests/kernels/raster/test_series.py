"""Series maths: first lasting change, change count, persistence, unknown dates skipped; against an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2c_batch.kernels.raster.series import (
    MAX_DATES,
    NO_CHANGE_RGB,
    UNKNOWN_RGB,
    date_colours,
    differs_from_start,
    first_change_histogram,
    first_change_rgb,
    series_products,
)

from testutils import series_oracle

U = 255  # unknown


def _one(values: list[int], *, persistence: int, against: str = "first") -> tuple[int, int, int, int]:
    """The products of one pixel whose pairs' masks are ``values``, and whether a change is pending."""
    masks = np.array(values, np.uint8).reshape(-1, 1, 1)
    p = series_products(masks, persistence=persistence, against=against)  # type: ignore[arg-type]
    return (int(p.first_change[0, 0]), int(p.change_count[0, 0]), int(p.persistent_change[0, 0]),
            int(p.pending[0, 0]))


@pytest.mark.parametrize(("values", "persistence", "expected"), [
    ([0, 1, 1, 1], 2, (2, 3, 1, 0)),       # lasting from date 2, confirmed by dates 3 and 4
    ([0, 1, 0, 0], 2, (0, 1, 0, 0)),       # flicker: back at date 3
    ([0, 1, 1, 0], 2, (0, 2, 0, 0)),       # lasted one further date only
    ([0, 1, 1, 0], 1, (2, 2, 1, 0)),       # ... which persistence 1 accepts
    ([0, 0, 0, 1], 2, (0, 1, 0, 1)),      # seen on the last date: not (yet) lasting, pending
    ([1, 0, 1, 1, 1], 2, (3, 4, 1, 0)),      # a flicker, then a lasting change
    ([0, 1, U, 1, 1], 2, (2, 3, 1, 0)),      # an unknown date is skipped, not a reset
    ([0, 1, U, U, 0], 2, (0, 1, 0, 0)),      # ... nor a confirmation
    ([0, 1, 1, U], 2, (0, 2, 0, 1)),         # still open when the series ends (last date unknown): pending
    ([U, U, U], 1, (U, U, U, 0)),          # never known
    ([0, 1, 0], 0, (2, 1, 1, 0)),          # persistence 0: every change is lasting
])
def test_series_products__against_first(values: list[int], persistence: int,
                                        expected: tuple[int, int, int, int]) -> None:
    assert _one(values, persistence=persistence, against="first") == expected


@pytest.mark.parametrize(("values", "persistence", "expected"), [
    ([0, 1, 0, 0], 2, (2, 1, 1, 0)),       # one change, the pixel stays as it became
    ([0, 1, 1, 0, 0], 2, (0, 2, 0, 0)),      # a change and its return: flicker, the return is no change
    ([0, 1, U, U, 0, 0], 2, (2, 1, 1, 0)),   # a cloudy date (both its pairs unknown) is skipped
    ([1, 1, 0, 1, 0, 0], 2, (4, 3, 1, 0)),   # flicker at 1-2, then a lasting change at 4
    ([0, 1, 1, 0, 1], 2, (0, 3, 0, 1)),      # a flicker, then a change on the last date: pending
])
def test_series_products__against_previous(values: list[int], persistence: int,
                                           expected: tuple[int, int, int, int]) -> None:
    assert _one(values, persistence=persistence, against="previous") == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0, 1, U]), min_size=1, max_size=9), st.integers(0, 3),
       st.sampled_from(["first", "previous"]))
def test_series_products__equals_the_definition(values: list[int], persistence: int, against: str) -> None:
    assert _one(values, persistence=persistence, against=against) == series_oracle(values, persistence, against)


def test_series_products__block_of_pixels_equals_each_pixel() -> None:
    rng = np.random.default_rng(3)
    masks = rng.choice(np.array([0, 0, 0, 1, U], np.uint8), size=(6, 9, 11))
    got = series_products(masks, persistence=2, against="previous")
    for r in range(9):
        for c in range(11):
            want = series_oracle(masks[:, r, c].tolist(), 2, "previous")
            assert (got.first_change[r, c], got.change_count[r, c], got.persistent_change[r, c],
                    got.pending[r, c]) == want
    assert all(a.dtype == np.uint8 for a in got.as_dict().values())


def test_differs_from_start__parity_of_changes_with_unknowns() -> None:
    m = np.array([0, 1, U, 1, 1, 0], np.uint8).reshape(-1, 1, 1)
    assert differs_from_start(m, against="previous")[:, 0, 0].tolist() == [0, 1, U, 0, 1, 1]
    assert differs_from_start(m, against="first")[:, 0, 0].tolist() == [0, 1, U, 1, 1, 0]


def test_first_change_histogram__counts_known_pixels_per_date() -> None:
    first = np.array([[0, 2, 2], [U, 3, 0]], np.uint8)
    assert first_change_histogram(first, 5).tolist() == [2, 0, 2, 1, 0]


def test_first_change_rgb__one_colour_per_date_from_early_to_late() -> None:
    colours = date_colours(6)
    assert colours.shape == (6, 3) and colours.dtype == np.uint8 and len({tuple(c) for c in colours}) == 6
    assert tuple(colours[0]) == NO_CHANGE_RGB and colours[1].tolist() == [255, 230, 0]
    first = np.array([[0, 1, 5], [3, U, 0]], np.uint8)
    rgb = first_change_rgb(first, 6)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 2].tolist() == colours[5].tolist() and rgb[1, 0].tolist() == colours[3].tolist()
    assert tuple(rgb[1, 1]) == UNKNOWN_RGB and tuple(rgb[1, 2]) == NO_CHANGE_RGB


def test_series_products__bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="persistence must be >= 0"):
        series_products(np.zeros((2, 1, 1), np.uint8), persistence=-1, against="first")
    with pytest.raises(ValueError, match=r"uint8 \[P, h, w\]"):
        series_products(np.zeros((2, 1), np.uint8), persistence=1, against="first")
    with pytest.raises(ValueError, match=f"at most {MAX_DATES} dates"):
        series_products(np.zeros((MAX_DATES, 1, 1), np.uint8), persistence=1, against="first")
    with pytest.raises(ValueError, match="against must be"):
        series_products(np.zeros((2, 1, 1), np.uint8), persistence=1, against="last")  # type: ignore[arg-type]
