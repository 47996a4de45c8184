"""A synthetic series of dates of one place, with planted lasting changes, flickers and a cloud.

Every date is a 3-band uint8 GeoTIFF on the same grid, carrying its acquisition time
(``DATETIME`` tag) and nodata 0. The background is a dim, smooth texture with a little
independent noise per date; a changed cell is painted bright, far enough from the
background that change vector analysis (``cva``) finds exactly the planted cells. What
was planted is known exactly, so a test can check every product of a series.

The layout (:func:`default_events`) puts one event per square cell of a lattice:

- ``lasting``: from ``date`` on, the cell stays changed;
- ``flicker``: changed for ``length`` dates from ``date``, then back as it was;
- ``cloud``: the cell (and a margin around it) is not observed on ``date``: nodata.

The generator knows each cell's true state on every date, so it gives the masks a
perfect comparator would write for each pair (:meth:`SyntheticSeries.pair_truth`, 255
where a date of the pair is not observed). The series maths themselves are left to the
tests that check them.

Example:
    >>> events = default_events(6)
    >>> [(e.kind, e.date) for e in events][:3]
    [('lasting', 1), ('lasting', 2), ('lasting', 3)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
from affine import Affine

from s2c_batch.kernels.raster.encode import NODATA
from s2c_batch.kernels.raster.series import Against
from s2c_batch.pipeline.errors import ConfigError, OutputError, OutputExistsError

#: Side of a lattice cell and of the square painted in it, in pixels.
CELL = 32
SQUARE = 20

#: Digital numbers of the background (mean, texture amplitude, noise) and of a changed cell.
BACKGROUND, TEXTURE, NOISE, CHANGED = 45.0, 10.0, 2.0, 235

#: Input nodata of every date (the texture never reaches it).
INPUT_NODATA = 0


@dataclass(frozen=True)
class SeriesEvent:
    """One planted event in one cell.

    Attributes:
        kind: ``lasting``, ``flicker`` or ``cloud``.
        cell: ``(row, col)`` of the lattice cell.
        date: the first changed date (``lasting``, ``flicker``) or the unobserved date (``cloud``).
        length: dates a flicker stays changed.
        name: what the event is for, in messages.
    """

    kind: Literal["lasting", "flicker", "cloud"]
    cell: tuple[int, int]
    date: int
    length: int = 1
    name: str = ""

    def window(self, margin: int = 0) -> tuple[slice, slice]:
        """The event's square (grown by ``margin`` pixels) as array slices."""
        off = (CELL - SQUARE) // 2
        r, c = self.cell[0] * CELL + off - margin, self.cell[1] * CELL + off - margin
        return slice(max(r, 0), r + SQUARE + 2 * margin), slice(max(c, 0), c + SQUARE + 2 * margin)

    def changed_on(self, date: int) -> bool:
        """Whether the cell is in its changed state on ``date``."""
        if self.kind == "lasting":
            return date >= self.date
        if self.kind == "flicker":
            return self.date <= date < self.date + self.length
        return False


def default_events(n_dates: int) -> tuple[SeriesEvent, ...]:
    """The planted layout of a series of ``n_dates`` dates (at least 5) on a lattice of 4 x 4 cells.

    Lasting changes from dates 1, 2 and 3; flickers of one and two dates; a flicker and,
    later, a lasting change in the same cell; a lasting change whose cell is unobserved on
    date 2; a flicker whose return date is unobserved; a cloud over unchanged ground.

    Raises:
        ConfigError: fewer than 5 dates.
    """
    if n_dates < 5:
        raise ConfigError(f"a synthetic series needs at least 5 dates, got {n_dates!r}")
    return (
        SeriesEvent("lasting", (0, 0), 1, name="lasting from date 1"),
        SeriesEvent("lasting", (0, 1), 2, name="lasting from date 2"),
        SeriesEvent("lasting", (0, 2), 3, name="lasting from date 3"),
        SeriesEvent("flicker", (1, 0), 1, 1, name="flicker of one date"),
        SeriesEvent("flicker", (1, 1), 2, 2, name="flicker of two dates"),
        SeriesEvent("flicker", (1, 2), 1, 1, name="flicker, then lasting"),
        SeriesEvent("lasting", (1, 2), 3, name="flicker, then lasting"),
        SeriesEvent("lasting", (2, 0), 1, name="lasting, unobserved on date 2"),
        SeriesEvent("cloud", (2, 0), 2, name="lasting, unobserved on date 2"),
        SeriesEvent("flicker", (2, 1), 1, 2, name="flicker, unobserved when it returns"),
        SeriesEvent("cloud", (2, 1), 3, name="flicker, unobserved when it returns"),
        SeriesEvent("cloud", (3, 3), 1, name="cloud over unchanged ground"),
    )


@dataclass(frozen=True)
class SyntheticSeries:
    """A written synthetic series.

    Attributes:
        dates: the date files, in date order.
        times: their acquisition times.
        events: what was planted.
        size: scene side in pixels.
        seed: the generator's seed.
    """

    dates: tuple[Path, ...]
    times: tuple[datetime, ...]
    events: tuple[SeriesEvent, ...]
    size: int
    seed: int

    def states(self, n_dates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each pixel's true state and whether it is observed, on each date.

        Returns:
            ``(changed, observed)``: bool ``[N, size, size]`` each.
        """
        return _states(self.events, self.size, n_dates or len(self.dates))

    def pair_truth(self, n_dates: int | None = None, *, against: Against = "previous") -> np.ndarray:
        """The change masks a perfect comparator writes for each pair of the first ``n_dates`` dates.

        Returns:
            uint8 ``[N - 1, size, size]``: pair ``j`` ends at date ``j + 1``; 1 changed, 0 not,
            255 where a date of the pair is not observed.
        """
        changed, observed = self.states(n_dates)
        out = np.zeros((changed.shape[0] - 1, self.size, self.size), np.uint8)
        for j in range(out.shape[0]):
            a = 0 if against == "first" else j
            out[j] = changed[a] != changed[j + 1]
            out[j][~(observed[a] & observed[j + 1])] = NODATA
        return out

    def event_cells(self, name: str) -> tuple[slice, slice]:
        """The square of the events called ``name``."""
        for e in self.events:
            if e.name == name:
                return e.window()
        raise KeyError(f"no event {name!r}; events are {sorted({e.name for e in self.events})}")


def _states(events: Sequence[SeriesEvent], size: int, n_dates: int) -> tuple[np.ndarray, np.ndarray]:
    changed = np.zeros((n_dates, size, size), bool)
    observed = np.ones((n_dates, size, size), bool)
    for t in range(n_dates):
        for e in events:
            if e.kind == "cloud" and e.date == t:
                observed[t][e.window(margin=4)] = False
            elif e.kind != "cloud" and e.changed_on(t):
                changed[t][e.window()] = True
    return changed, observed


def write_synthetic_series(
    out_dir: str | os.PathLike[str],
    *,
    n_dates: int = 6,
    size: int = 128,
    seed: int = 0,
    start: datetime = datetime(2024, 6, 1, 10, 30, tzinfo=UTC),
    step: timedelta = timedelta(days=5),
    crs: str = "EPSG:32631",
    resolution: float = 0.5,
    origin: tuple[float, float] = (440000.0, 5420000.0),
    overwrite: bool = False,
) -> SyntheticSeries:
    """Write ``date_00.tif`` .. ``date_NN.tif`` and ``series.json`` (what was planted) into ``out_dir``.

    Args:
        out_dir: the folder, created if missing.
        n_dates: dates (at least 5).
        size: scene side in pixels (at least 4 cells of :data:`CELL`).
        seed: seed of the texture and noise.
        start: acquisition time of date 0.
        step: time between dates.
        crs: the grid's CRS (projected, metres).
        resolution: pixel size.
        origin: top-left corner.
        overwrite: replace the files of an earlier series in ``out_dir`` instead of refusing.

    Returns:
        The written series.

    Raises:
        ConfigError: too few dates, or a scene smaller than the layout.
        OutputExistsError: a date file or ``series.json`` exists and ``overwrite`` is false (exit code 4).
        OutputError: the folder cannot be written.
    """
    import rasterio

    if size < 4 * CELL:
        raise ConfigError(f"a synthetic series needs size >= {4 * CELL} pixels, got {size!r}")
    events = default_events(n_dates)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([BACKGROUND + TEXTURE * np.sin(yy / (9 + k) + xx / (13 + k)) for k in range(3)])
    changed, observed = _states(events, size, n_dates)
    out = Path(out_dir)
    existing = [str(p) for p in (*(out / f"date_{t:02d}.tif" for t in range(n_dates)), out / "series.json")
                if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]!r} already exists; pass --overwrite to replace it or choose another DIR")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": crs,
               "transform": Affine(resolution, 0.0, origin[0], 0.0, -resolution, origin[1]),
               "nodata": INPUT_NODATA, "tiled": True, "blockxsize": 64, "blockysize": 64}
    paths, times = [], []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for t in range(n_dates):
            data = base + rng.normal(0, NOISE, base.shape)
            data[:, changed[t]] = CHANGED
            pixels = np.clip(np.rint(data), 1, 254).astype(np.uint8)
            pixels[:, ~observed[t]] = INPUT_NODATA
            when = start + t * step
            path = out / f"date_{t:02d}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(pixels)
                dst.update_tags(DATETIME=when.strftime("%Y-%m-%dT%H:%M:%SZ"), S2C_SYNTH_SEED=str(seed))
            paths.append(path)
            times.append(when)
        (out / "series.json").write_text(json.dumps({
            "seed": seed, "size": size, "dates": [p.name for p in paths],
            "times": [w.strftime("%Y-%m-%dT%H:%M:%SZ") for w in times],
            "events": [asdict(e) for e in events]}, indent=2) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write the synthetic series into {str(out)!r}: {exc}") from exc
    return SyntheticSeries(tuple(paths), tuple(times), events, size, seed)
