"""The dates of a series and its pairs: each input's acquisition time, their order, the pairs' names.

Every date is an input as ``run`` takes one (a path, a URL, a STAC Item). Its time is the
STAC Item's ``datetime``, else the raster's metadata (:mod:`~s2c_batch.pipeline.inputs.acquisition`).
When every date has a time they are ordered by it; when none has one they keep the order
given (a warning says so); a mix is refused, since the order would be a guess.

A date's ``label`` names it in its pairs' folders: its time as ``YYYYMMDDTHHMMSS`` (UTC),
else its file's stem. Labels are unique within a series, so a pair's folder is the same
night after night, and a date inserted later makes new pairs beside the old.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from s2c_batch.kernels.raster.series import MAX_DATES, Against
from s2c_batch.pipeline.config import InputConfig, StorageConfig
from s2c_batch.pipeline.errors import ConfigError, InputError
from s2c_batch.pipeline.inputs.acquisition import source_datetime, to_rfc3339
from s2c_batch.pipeline.inputs.source import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesDate:
    """One date of a series.

    Attributes:
        index: its place in the series, 0 = the first date.
        source: the input.
        time: its acquisition time (UTC), or ``None``.
        label: its name in pair folders.
    """

    index: int
    source: Source
    time: datetime | None
    label: str

    def to_json(self) -> dict[str, Any]:
        """The date as the series record and the lookup table of ``first_change`` hold it."""
        return {"index": self.index, "datetime": to_rfc3339(self.time) if self.time else None,
                "label": self.label, "source": self.source.redacted}


def check_date_masks(sources: Sequence[Source], cfg: InputConfig) -> None:
    """Refuse external masks a series would apply to the wrong dates.

    ``input.mask_t1`` / ``input.mask_t2`` are config keys, the same for every pair of a
    series, while each date needs its own mask. They can only be the name of an asset
    that every date's STAC Item has (for example ``scl``), the same name for both keys;
    a mask band, an alpha band or an internal mask of each date's raster needs no key.

    Args:
        sources: the series' dates as given.
        cfg: the ``input`` config section.

    Raises:
        ConfigError: a mask key names a file or URL, the two keys differ, or a date is no
            STAC Item (exit 2; the message names the keys and the fix).
    """
    values = {key: value for key, value in (("input.mask_t1", cfg.mask_t1), ("input.mask_t2", cfg.mask_t2))
              if value is not None}
    if not values:
        return
    fix = ("a series needs a mask per date: give the dates as STAC Items and set input.mask_t1 and "
           "input.mask_t2 to the name of their mask asset (e.g. 'scl'), or use each date's own mask or "
           "alpha band and leave both keys unset")
    names = {value.strip() for value in values.values()}
    if len(values) < 2 or len(names) > 1:
        given = ", ".join(f"{key}={value!r}" for key, value in values.items())
        raise ConfigError(f"{given}: one value for every pair of the series would mask the wrong dates; {fix}")
    name = names.pop()
    if "/" in name or Source.parse(name).is_url:
        raise ConfigError(f"input.mask_t1 = input.mask_t2 = {name!r} names one file for every date; {fix}")
    items = [s for s in sources if not s.is_stac_item]
    if items:
        raise ConfigError(f"input.mask_t1 = input.mask_t2 = {name!r} names an asset, but date "
                          f"{items[0].redacted!r} is no STAC Item; {fix}")


def order_dates(sources: Sequence[Source], storage: StorageConfig | None = None) -> tuple[SeriesDate, ...]:
    """The dates of a series in acquisition order.

    Args:
        sources: the inputs, in any order.
        storage: how remote inputs are reached.

    Returns:
        The dates, indexed 0..N-1 in time order.

    Raises:
        ConfigError: fewer than 2 dates, more than the series holds, a date given twice (exit 2).
        InputError: some dates carry a time and others do not, two dates share a time, or two
            dates without a time share a file name (exit 3).
    """
    if len(sources) < 2:
        raise ConfigError(f"a series needs at least 2 dates, got {len(sources)}; give every acquisition of the place")
    if len(sources) > MAX_DATES:
        raise ConfigError(f"a series holds at most {MAX_DATES} dates (first_change is a uint8 date index), got "
                          f"{len(sources)}; start a new series folder for the later dates")
    seen: dict[str, int] = {}
    for i, s in enumerate(sources):
        if s.text in seen:
            raise ConfigError(f"date {s.redacted!r} is given twice (positions {seen[s.text] + 1} and {i + 1}); "
                              "give each acquisition once")
        seen[s.text] = i
    times = [source_datetime(s, storage, label=f"date {s.redacted!r}") for s in sources]
    missing = [s.redacted for s, t in zip(sources, times, strict=True) if t is None]
    if missing and len(missing) < len(sources):
        raise InputError(
            f"{len(missing)} of {len(sources)} dates carry no acquisition time: {missing}; a series is ordered "
            "by time, so give each an ACQUISITIONDATETIME or DATETIME tag "
            "(gdal_edit.py -mo DATETIME=2024-06-01T10:30:00Z) or a STAC Item with a datetime"
        )
    if missing:
        log.warning("no date of the series carries an acquisition time: they are taken in the order given")
        order = list(range(len(sources)))
    else:
        order = sorted(range(len(sources)), key=lambda i: times[i])  # type: ignore[arg-type,return-value]
        for a, b in zip(order, order[1:], strict=False):
            if times[a] == times[b]:
                raise InputError(f"dates {sources[a].redacted!r} and {sources[b].redacted!r} share the acquisition "
                                 f"time {to_rfc3339(times[a])}; give each acquisition once")  # type: ignore[arg-type]
    dates = []
    for index, i in enumerate(order):
        when = times[i]
        label = when.strftime("%Y%m%dT%H%M%S") if when else _stem(sources[i])
        dates.append(SeriesDate(index, sources[i], when, label))
    labels = [d.label for d in dates]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise InputError(f"dates without an acquisition time share the file name(s) {dup}; rename them or give "
                         "them times: a date's name names the folders of its pairs")
    return tuple(dates)


#: Where a series keeps its pairs' runs, under its folder.
PAIRS_DIR = "pairs"


@dataclass(frozen=True)
class SeriesPair:
    """One pair of a series: a run of ``t1`` and ``t2``, kept in its own folder.

    Attributes:
        index: pair ``j`` ends at date ``j + 1``.
        t1: the earlier date (the one before, or the first date of the series).
        t2: the later date.
    """

    index: int
    t1: SeriesDate
    t2: SeriesDate

    @property
    def name(self) -> str:
        """``<t1 label>_<t2 label>``: the same name night after night."""
        return f"{self.t1.label}_{self.t2.label}"

    @property
    def key(self) -> str:
        """Its folder (or prefix) under the series'."""
        return f"{PAIRS_DIR}/{self.name}"


def plan_pairs(dates: Sequence[SeriesDate], against: Against) -> tuple[SeriesPair, ...]:
    """The pairs of a series: each date with the one before (``previous``) or with the first (``first``).

    Example:
        >>> d = [SeriesDate(i, Source(f"d{i}.tif"), None, f"d{i}") for i in range(3)]
        >>> [p.name for p in plan_pairs(d, "previous")], [p.name for p in plan_pairs(d, "first")]
        (['d0_d1', 'd1_d2'], ['d0_d1', 'd0_d2'])
    """
    return tuple(SeriesPair(j - 1, dates[0] if against == "first" else dates[j - 1], dates[j])
                 for j in range(1, len(dates)))


def _stem(source: Source) -> str:
    """A date's name from its file: the stem, with anything but letters, digits, ``-`` and ``_`` as ``_``."""
    name = PurePosixPath(source.name).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "date"
