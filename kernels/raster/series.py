"""Per-pixel maths of a series of change masks: the first lasting change, how often, and persistence.

Pure numpy on one block of a series of ``N`` dates. The pipeline
(:mod:`s2c_batch.pipeline.series.products`) reads the ``change_mask`` of every pair of the
series over one block, stacks them in date order and calls :func:`series_products`.

A series of dates ``0..N-1`` is compared in ``N - 1`` pairs; pair ``j`` ends at date
``j + 1`` and compares it with the date before (``against="previous"``) or with date 0
(``against="first"``). From the pairs' masks each pixel gets, for every date ``t >= 1``,
whether it *differs from its state at the start of the series* (:func:`differs_from_start`):

- ``first``: the pair's mask itself (date ``t`` against date 0);
- ``previous``: the parity of the changes detected since the start. A change followed by
  another is read as a change and its return (A -> B -> A); a pixel that goes A -> B -> C
  through two detected changes counts as back at its start. Consecutive pairs cannot tell
  these apart; ``against="first"`` can.

A date on which the pixel is unknown (255 in the pair's mask: not observed, nodata) is
skipped: it neither confirms, nor breaks, nor starts anything.

A **lasting change** is first detected at date ``t`` when the pixel differs from its start
at ``t`` (and did not at the known date before), and still differs on each of the next
``persistence`` known dates. A change that comes back within them is **flicker**; the next
change after it is judged afresh. A change seen in the last ``persistence`` known dates
is not (yet) lasting: it is *pending*, confirmed or dropped by the nights to come.

Products, uint8 as every product (255 = unknown: no pair of the series knows the pixel):

- ``first_change``: ``t`` (1..N-1), the date index of the first lasting change; 0 = none.
- ``change_count``: in how many pairs the pixel changed (``change_mask == 1``).
- ``persistent_change``: 1 where a lasting change was detected, else 0.

Beside them, not a product: ``pending``, where a change is still open at the end of the
series (no lasting change yet, the pixel still differs from its start, fewer than
``persistence`` known dates since). A changed pixel that is neither lasting nor pending
came back: flicker.

Example:
    >>> m = np.array([[[0, 1, 1]], [[1, 1, 0]], [[1, 0, 0]], [[1, 0, 0]]], np.uint8)  # 4 pairs, 1 x 3 px
    >>> p = series_products(m, persistence=2, against="first")
    >>> p.first_change.tolist(), p.change_count.tolist(), p.persistent_change.tolist()
    ([[2, 0, 0]], [[3, 2, 1]], [[1, 0, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from s2c_batch.kernels.raster.encode import NODATA

#: What a series' pairs compare each date with.
Against = Literal["previous", "first"]

#: Dates a series may have: ``first_change`` holds a date index (at most 254) in a uint8 whose 255 is unknown.
MAX_DATES = 255


@dataclass(frozen=True)
class SeriesProducts:
    """The series products of one block, uint8 ``[h, w]`` each (255 = unknown).

    Attributes:
        first_change: date index (1..N-1) of the first lasting change; 0 = none.
        change_count: pairs in which the pixel changed.
        persistent_change: 1 where a lasting change was detected, else 0.
        pending: bool: a change still open at the last date, too recent to be lasting yet
            (False where a lasting change was found, and where the pixel is never known).
    """

    first_change: np.ndarray
    change_count: np.ndarray
    persistent_change: np.ndarray
    pending: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """Product name -> array, in the order the store holds them (``pending`` is no product)."""
        return {"first_change": self.first_change, "change_count": self.change_count,
                "persistent_change": self.persistent_change}


def differs_from_start(masks: np.ndarray, *, against: Against) -> np.ndarray:
    """Whether each pixel differs from its start of the series at the end date of each pair.

    Args:
        masks: uint8 ``[P, h, w]``: the ``change_mask`` of pair ``j`` (ending at date ``j + 1``),
            0/1, 255 = unknown.
        against: what the pairs compare each date with (``previous`` or ``first``).

    Returns:
        uint8 ``[P, h, w]``: 1 differs, 0 same as at the start, 255 unknown.

    Example:
        >>> m = np.array([[[1]], [[255]], [[1]], [[0]]], np.uint8)
        >>> differs_from_start(m, against="previous")[:, 0, 0].tolist()
        [1, 255, 0, 0]
    """
    _check_masks(masks)
    if against == "first":
        return masks.copy()
    if against != "previous":
        raise ValueError(f"against must be 'previous' or 'first', got {against!r}")
    out = np.empty_like(masks)
    parity = np.zeros(masks.shape[1:], bool)
    for j in range(masks.shape[0]):
        parity ^= masks[j] == 1
        out[j] = parity
        out[j][masks[j] == NODATA] = NODATA
    return out


def series_products(masks: np.ndarray, *, persistence: int, against: Against) -> SeriesProducts:
    """The series products of one block from the masks of its pairs.

    Args:
        masks: uint8 ``[P, h, w]``: the ``change_mask`` of each pair in date order (pair ``j``
            ends at date ``j + 1``), 0/1, 255 = unknown.
        persistence: further known dates a change must last to be lasting (``series.persistence``).
        against: what the pairs compare each date with.

    Returns:
        The three products and ``pending`` (see the module's docstring).

    Raises:
        ValueError: ``persistence < 0``, masks that are not uint8 ``[P, h, w]``, or a series
            longer than :data:`MAX_DATES` dates.
    """
    if persistence < 0:
        raise ValueError(f"persistence must be >= 0, got {persistence!r}")
    d = differs_from_start(masks, against=against)
    shape = masks.shape[1:]
    first = np.zeros(shape, np.uint8)
    start = np.full(shape, -1, np.int16)  # date the open change was seen, -1 = none open
    streak = np.zeros(shape, np.int16)  # further known dates it has lasted
    for j in range(d.shape[0]):
        known = d[j] != NODATA
        on, off = known & (d[j] == 1), known & (d[j] == 0)
        open_ = start >= 0
        streak[on & open_] += 1
        opened = on & ~open_ & (first == 0)
        start[opened], streak[opened] = j + 1, 0
        start[off & open_] = -1  # back at the start within the window: flicker
        lasting = (start >= 0) & (streak >= persistence)
        first[lasting] = start[lasting]
        start[lasting] = -1
    seen = (masks != NODATA).any(axis=0)
    count = (masks == 1).sum(axis=0, dtype=np.int64).astype(np.uint8)
    persistent = (first > 0).astype(np.uint8)
    pending = start >= 0  # open, never lasting (a lasting change closes it and opens no other)
    for arr in (first, count, persistent):
        arr[~seen] = NODATA
    return SeriesProducts(first, count, persistent, pending)


def first_change_histogram(first_change: np.ndarray, n_dates: int) -> np.ndarray:
    """Pixels per ``first_change`` value 0..N-1 (unknown pixels not counted).

    Args:
        first_change: uint8 ``[h, w]`` from :func:`series_products`.
        n_dates: dates of the series (``N``).

    Returns:
        int64 ``[N]``: index 0 = known pixels without a lasting change, ``t`` = pixels whose
        first lasting change is at date ``t``.
    """
    values = first_change[first_change != NODATA].astype(np.int64)
    return np.bincount(values, minlength=n_dates)[:n_dates].astype(np.int64)


#: Colours of the series map: no lasting change, unknown, and the ends of the ramp of first dates.
NO_CHANGE_RGB, UNKNOWN_RGB = (48, 48, 48), (70, 130, 180)
EARLY_RGB, LATE_RGB = (255, 230, 0), (190, 0, 140)


def date_colours(n_dates: int) -> np.ndarray:
    """uint8 ``[N, 3]``: the colour of each ``first_change`` value 0..N-1 (0 = no lasting change).

    Dates 1..N-1 run from yellow (early) to purple (late).

    Example:
        >>> date_colours(3).tolist()
        [[48, 48, 48], [255, 230, 0], [190, 0, 140]]
    """
    t = np.linspace(0.0, 1.0, max(1, n_dates - 1))[:, None]
    ramp = np.rint((1 - t) * np.array(EARLY_RGB) + t * np.array(LATE_RGB)).astype(np.uint8)
    return np.concatenate([np.array([NO_CHANGE_RGB], np.uint8), ramp[: n_dates - 1]])


def first_change_rgb(first_change: np.ndarray, n_dates: int) -> np.ndarray:
    """The series map: each pixel coloured by the date of its first lasting change.

    Args:
        first_change: uint8 ``[h, w]`` from :func:`series_products` (255 = unknown).
        n_dates: dates of the series (``N``).

    Returns:
        uint8 ``[h, w, 3]``: :func:`date_colours` per value, unknown in steel blue.
    """
    palette = np.tile(np.array(UNKNOWN_RGB, np.uint8), (256, 1))
    palette[:n_dates] = date_colours(n_dates)
    return palette[first_change]


def _check_masks(masks: np.ndarray) -> None:
    if masks.ndim != 3 or masks.dtype != np.uint8:
        raise ValueError(f"masks must be uint8 [P, h, w], got {masks.dtype} {masks.shape}")
    if masks.shape[0] + 1 > MAX_DATES:
        raise ValueError(f"a series holds at most {MAX_DATES} dates, got {masks.shape[0] + 1}")
