"""The synthetic scene model: renders any window of a seeded scene pair, pure numpy.

Every pixel is a pure function of ``(seed, global row, global column)``, so a
window renders the same whatever block size produced it, and a scene of any
size is written one window at a time in bounded memory:

- Background parcels and objects live on a global grid of ``CELL`` x ``CELL``
  pixel cells. Each cell draws its own parcels and objects from
  ``numpy.random.default_rng([seed, stream, cell_row, cell_col])``; a window
  rasterises the objects of every cell within ``MARGIN`` pixels of it (no object
  reaches further than ``MARGIN`` from its cell), so objects crossing window
  borders are consistent.
- Per-pixel textures and sensor noise come from a counter-based hash of the
  global pixel (or noise-lattice) coordinates, never from a sequential stream.

Scene content. Background parcels (up to two per cell) of crop fields
(oriented stripes; a quarter of them shift colour by 20-35 DN between dates,
crop growth that is *not* change), grass, bare soil and grey built-up noise.
Objects, painted in this order: vegetation patches (dark green canopy), water bodies (dark blue
blobs), buildings (bright, red or grey rectangles with a gable-roof shading and a
dark outline). t2 differs from t1 everywhere by a global gain, a per-band bias,
a faint low-frequency haze and independent sensor noise (about 10-25 DN of
per-pixel colour difference), so change detection is not trivial, while planted
changes differ by 60-150 DN.

``truth_class.tif`` codes (also in its ``CLASS_CODES`` tag)::

    0  no change
    1  building_new          building absent at t1, present at t2
    2  building_demolished   building present at t1, absent at t2
    3  water_expanded        water at t2 where it was not at t1
    4  water_receded         water at t1 where it is not at t2
    5  vegetation_cleared    vegetation at t1 turned into bare soil at t2

A pixel takes the event of the last painted object covering it at either date;
an unchanged object on top hides the changes below it. ``truth.tif`` is
``truth_class > 0`` (0/1); neither truth file uses 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: side of the global grid cell holding parcels and objects, in pixels.
CELL: int = 256
#: furthest an object reaches beyond its cell, in pixels.
MARGIN: int = 128
#: bump when the rendered pixels change for a given seed.
GENERATOR_VERSION: int = 1

CLASS_CODES: dict[int, str] = {
    0: "no_change",
    1: "building_new",
    2: "building_demolished",
    3: "water_expanded",
    4: "water_receded",
    5: "vegetation_cleared",
}

_VEG, _WATER, _BUILDING = 0, 1, 2
_SUN_FACTORS = (1.0, 0.82)


@dataclass(frozen=True)
class SyntheticBlock:
    """One rendered window.

    Attributes:
        t1: uint8 ``[3, H, W]``.
        t2: uint8 ``[3, H, W]``.
        truth_class: uint8 ``[H, W]``, codes of :data:`CLASS_CODES`.
    """

    t1: np.ndarray
    t2: np.ndarray
    truth_class: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        """uint8 ``[H, W]`` 0/1 change truth."""
        return (self.truth_class > 0).astype(np.uint8)


# ----------------------------------------------------------------- hashing


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _key(seed: int, salt: int) -> np.uint64:
    with np.errstate(over="ignore"):
        return np.uint64(_mix(np.array([seed * 1000003 + salt], np.uint64))[0])


def _hash(rows: np.ndarray, cols: np.ndarray, key: np.uint64) -> np.ndarray:
    """uint64 hash of broadcast integer coordinates ``rows [H, 1]`` x ``cols [1, W]``."""
    with np.errstate(over="ignore"):
        r = _mix(rows.astype(np.uint64) ^ key)
        return _mix((cols.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ r)


def _unit(h: np.ndarray, shift: int = 40) -> np.ndarray:
    """24 bits of a hash as float32 in [0, 1)."""
    return ((h >> np.uint64(shift)) & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(1 << 24)


def _pixel_noise(r0: int, r1: int, c0: int, c1: int, key: np.uint64, bands: int = 1) -> np.ndarray:
    """Uniform noise in [-1, 1) per pixel: float32 ``[bands, H, W]`` (at most 3 bands)."""
    h = _hash(np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :], key)
    return np.stack([_unit(h, 40 - 20 * b) * 2 - 1 for b in range(bands)])


def _value_noise(r0: int, r1: int, c0: int, c1: int, scale: float, key: np.uint64) -> np.ndarray:
    """Smooth noise in [-1, 1] on a global lattice of spacing ``scale``: float32 ``[H, W]``."""
    y = (np.arange(r0, r1, dtype=np.float64) + 0.5) / scale
    x = (np.arange(c0, c1, dtype=np.float64) + 0.5) / scale
    gy, gx = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    ly = np.arange(gy[0], gy[-1] + 2)
    lx = np.arange(gx[0], gx[-1] + 2)
    lattice = _unit(_hash(ly[:, None], lx[None, :], key)) * 2 - 1
    fy, fx = (y - gy).astype(np.float32), (x - gx).astype(np.float32)
    fy, fx = (fy * fy * (3 - 2 * fy))[:, None], (fx * fx * (3 - 2 * fx))[None, :]
    iy, ix = (gy - ly[0])[:, None], (gx - lx[0])[None, :]
    top = lattice[iy, ix] * (1 - fx) + lattice[iy, ix + 1] * fx
    bottom = lattice[iy + 1, ix] * (1 - fx) + lattice[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


# ----------------------------------------------------------------- scene model


@dataclass(frozen=True)
class _Parcel:
    r0: int
    r1: int
    c0: int
    c1: int
    kind: int  # 0 field, 1 grass, 2 soil, 3 built-up noise
    color: tuple[float, float, float]
    angle: float
    period: float
    pheno: tuple[float, float, float]  # colour shift at t2 (crop growth): not a change


@dataclass(frozen=True)
class _Object:
    order: tuple[int, int, int, int]  # (layer, cell row, cell col, index): global paint order
    kind: int
    cy: float
    cx: float
    hy: float  # half extents at t1 (rectangles) / radii (blobs)
    hx: float
    scale1: float  # footprint scale at t1 (0 = absent)
    scale2: float  # footprint scale at t2 (0 = absent)
    event: int  # class code when the footprint or appearance differs between dates
    color: tuple[float, float, float]
    wobble: tuple[float, float, float]  # amplitude, lobes, phase of a blob's outline
    changed_state: bool = False  # vegetation: same footprint, cleared at t2


_FIELD_COLORS = ((160, 165, 85), (195, 175, 105), (115, 145, 65), (175, 150, 95))
_BASE = {1: (95, 135, 62), 2: (145, 115, 82), 3: (125, 124, 118)}
_ROOF_COLORS = ((218, 216, 210), (172, 62, 48), (138, 138, 144))
_VEG_COLOR = (48, 92, 44)
_SOIL_COLOR = (152, 122, 92)
_WATER_COLOR = (32, 52, 92)


def _cell_parcels(seed: int, ci: int, cj: int) -> list[_Parcel]:
    rng = np.random.default_rng([seed, 0, ci, cj])
    r0, c0 = ci * CELL, cj * CELL
    rects = [(r0, r0 + CELL, c0, c0 + CELL)]
    if rng.random() < 0.5:
        cut = int(rng.integers(64, CELL - 64))
        if rng.random() < 0.5:
            rects = [(r0, r0 + cut, c0, c0 + CELL), (r0 + cut, r0 + CELL, c0, c0 + CELL)]
        else:
            rects = [(r0, r0 + CELL, c0, c0 + cut), (r0, r0 + CELL, c0 + cut, c0 + CELL)]
    parcels = []
    for a0, a1, b0, b1 in rects:
        kind = int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1]))
        base = _FIELD_COLORS[int(rng.integers(len(_FIELD_COLORS)))] if kind == 0 else _BASE[kind]
        jitter = rng.uniform(-12, 12, 3)
        color = tuple(float(v) for v in np.asarray(base) + jitter)
        angle, period = float(rng.uniform(0, np.pi)), float(rng.uniform(6, 16))
        pheno = (0.0, 0.0, 0.0)
        if kind == 0 and rng.random() < 0.25:
            shift = rng.choice([-1, 1]) * np.array([-12.0, 18.0, -8.0]) * rng.uniform(0.8, 1.4)
            pheno = (float(shift[0]), float(shift[1]), float(shift[2]))
        parcels.append(_Parcel(a0, a1, b0, b1, kind, color, angle, period, pheno))  # type: ignore[arg-type]
    return parcels


def _cell_objects(seed: int, ci: int, cj: int) -> list[_Object]:
    rng = np.random.default_rng([seed, 1, ci, cj])
    r0, c0 = ci * CELL, cj * CELL
    objs: list[_Object] = []

    def centre() -> tuple[float, float]:
        return float(r0 + rng.uniform(0, CELL)), float(c0 + rng.uniform(0, CELL))

    def wobble() -> tuple[float, float, float]:
        return float(rng.uniform(0.05, 0.18)), float(rng.integers(3, 7)), float(rng.uniform(0, 2 * np.pi))

    if rng.random() < 0.4:  # vegetation patch, cleared with p = 0.6
        cy, cx = centre()
        cleared = bool(rng.random() < 0.6)
        objs.append(
            _Object((_VEG, ci, cj, 0), _VEG, cy, cx, float(rng.uniform(30, 90)), float(rng.uniform(30, 90)),
                    1.0, 1.0, 5 if cleared else 0, _VEG_COLOR, wobble(), changed_state=cleared)
        )
    if rng.random() < 0.25:  # water body that grows, shrinks or stays
        cy, cx = centre()
        radius = float(rng.uniform(25, 65))
        ratio = float(rng.uniform(0.6, 1.0))
        u = rng.random()
        if u < 0.4:
            s1, s2, event = 1.0, float(rng.uniform(1.25, 1.6)), 3
        elif u < 0.8:
            s1, s2, event = 1.0, float(rng.uniform(0.5, 0.8)), 4
        else:
            s1, s2, event = 1.0, 1.0, 0
        objs.append(_Object((_WATER, ci, cj, 0), _WATER, cy, cx, radius * ratio, radius, s1, s2, event,
                            _WATER_COLOR, wobble()))
    for k in range(int(rng.integers(0, 5))):  # buildings that appear, vanish or stay
        cy, cx = centre()
        hy, hx = float(rng.uniform(6, 30)), float(rng.uniform(6, 30))
        color = tuple(float(v) for v in np.asarray(_ROOF_COLORS[int(rng.integers(3))]) + rng.uniform(-10, 10, 3))
        u = rng.random()
        s1, s2, event = (0.0, 1.0, 1) if u < 0.35 else (1.0, 0.0, 2) if u < 0.7 else (1.0, 1.0, 0)
        objs.append(_Object((_BUILDING, ci, cj, k), _BUILDING, cy, cx, hy, hx, s1, s2, event, color,  # type: ignore[arg-type]
                            (0.0, 0.0, 0.0)))
    return objs


def _footprint(obj: _Object, scale: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Bool ``[h, w]`` footprint of ``obj`` at ``scale`` on pixel centres ``yy [h, 1]``, ``xx [1, w]``."""
    if scale == 0.0:
        return np.zeros((yy.shape[0], xx.shape[1]), bool)
    dy, dx = (yy - obj.cy) / (obj.hy * scale), (xx - obj.cx) / (obj.hx * scale)
    if obj.kind == _BUILDING:
        return (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
    amp, lobes, phase = obj.wobble
    return np.hypot(dy, dx) <= 1 + amp * np.sin(lobes * np.arctan2(dy, dx) + phase)


def _reach(obj: _Object) -> float:
    return max(obj.hy, obj.hx) * max(obj.scale1, obj.scale2) * (1 + obj.wobble[0]) + 1


# ----------------------------------------------------------------- rendering


def _render_background(seed: int, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.empty((3, r1 - r0, c1 - c0), np.float32)
    img2 = np.empty_like(img)
    for ci in range(r0 // CELL, (r1 - 1) // CELL + 1):
        for cj in range(c0 // CELL, (c1 - 1) // CELL + 1):
            for p in _cell_parcels(seed, ci, cj):
                a0, a1, b0, b1 = max(p.r0, r0), min(p.r1, r1), max(p.c0, c0), min(p.c1, c1)
                if a0 >= a1 or b0 >= b1:
                    continue
                if p.kind == 0:
                    yy = np.arange(a0, a1, dtype=np.float32)[:, None]
                    xx = np.arange(b0, b1, dtype=np.float32)[None, :]
                    tex = 14 * np.sin(2 * np.pi * (xx * np.cos(p.angle) + yy * np.sin(p.angle)) / p.period)
                    tex = tex + 6 * _value_noise(a0, a1, b0, b1, 24.0, _key(seed, 11))
                elif p.kind == 1:
                    tex = 18 * _value_noise(a0, a1, b0, b1, 5.0, _key(seed, 12))
                elif p.kind == 2:
                    tex = 14 * _value_noise(a0, a1, b0, b1, 14.0, _key(seed, 13))
                    tex = tex + 7 * _value_noise(a0, a1, b0, b1, 3.0, _key(seed, 14))
                else:
                    tex = 22 * _pixel_noise(a0, a1, b0, b1, _key(seed, 15))[0]
                sl = (slice(None), slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0))
                img[sl] = np.asarray(p.color, np.float32)[:, None, None] + tex
                img2[sl] = img[sl] + np.asarray(p.pheno, np.float32)[:, None, None]
    return img, img2


def _paint_object(obj: _Object, seed: int, img1: np.ndarray, img2: np.ndarray, cls: np.ndarray,
                  r0: int, r1: int, c0: int, c1: int) -> None:
    reach = _reach(obj)
    a0, a1 = max(r0, int(np.floor(obj.cy - reach))), min(r1, int(np.ceil(obj.cy + reach)) + 1)
    b0, b1 = max(c0, int(np.floor(obj.cx - reach))), min(c1, int(np.ceil(obj.cx + reach)) + 1)
    if a0 >= a1 or b0 >= b1:
        return
    yy = np.arange(a0, a1, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(b0, b1, dtype=np.float64)[None, :] + 0.5
    m1, m2 = _footprint(obj, obj.scale1, yy, xx), _footprint(obj, obj.scale2, yy, xx)
    if not (m1.any() or m2.any()):
        return
    color = np.asarray(obj.color, np.float32)[:, None, None]
    if obj.kind == _VEG:
        look1 = color + 22 * _value_noise(a0, a1, b0, b1, 4.0, _key(seed, 21))
        look2 = look1
        if obj.changed_state:
            soil = np.asarray(_SOIL_COLOR, np.float32)[:, None, None]
            look2 = soil + 10 * _value_noise(a0, a1, b0, b1, 9.0, _key(seed, 22))
    elif obj.kind == _WATER:
        look1 = look2 = color + 5 * _value_noise(a0, a1, b0, b1, 10.0, _key(seed, 23))
    else:
        long_axis_y = obj.hy >= obj.hx
        side = (yy - obj.cy < 0) if not long_axis_y else (xx - obj.cx < 0)
        shade = np.where(side, np.float32(_SUN_FACTORS[0]), np.float32(_SUN_FACTORS[1]))
        edge = (np.abs(yy - obj.cy) > obj.hy - 1.5) | (np.abs(xx - obj.cx) > obj.hx - 1.5)
        shade = np.where(edge, np.float32(0.55), shade).astype(np.float32)
        look1 = look2 = color * shade + 6 * _pixel_noise(a0, a1, b0, b1, _key(seed, 24))[0]
    sl = (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0))
    for img, mask, look in ((img1, m1, look1), (img2, m2, look2)):
        view = img[(slice(None), *sl)]
        view[:] = np.where(mask, np.broadcast_to(look, view.shape), view)
    changed = (m1 ^ m2) | (m1 & m2 & obj.changed_state)
    cls[sl] = np.where(m1 | m2, np.where(changed, np.uint8(obj.event), np.uint8(0)), cls[sl])


def _date_effects(seed: int, img: np.ndarray, r0: int, r1: int, c0: int, c1: int, date: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 2, date])
    gain = 1.0 if date == 1 else float(rng.uniform(0.9, 1.1))
    bias = np.zeros(3) if date == 1 else rng.uniform(-6, 6, 3)
    out = img * np.float32(gain) + bias.astype(np.float32)[:, None, None]
    out += 8 * _value_noise(r0, r1, c0, c1, 400.0, _key(seed, 30 + date))
    out += 5 * _pixel_noise(r0, r1, c0, c1, _key(seed, 40 + date), bands=3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_window(*, seed: int, size: int, row_off: int, col_off: int, height: int, width: int) -> SyntheticBlock:
    """Render one window of the synthetic scene ``(seed, size)``.

    Block-size invariant: the pixels of a window do not depend on which other
    windows are rendered or how the scene is cut.

    Args:
        seed: generator seed (>= 0).
        size: scene side in pixels; the window is clipped to the scene.
        row_off: first row of the window.
        col_off: first column.
        height: rows.
        width: columns.

    Returns:
        The window of t1, t2 ``[3, h, w]`` and the class truth ``[h, w]``.
    """
    r0, c0 = max(0, row_off), max(0, col_off)
    r1, c1 = min(size, row_off + height), min(size, col_off + width)
    if r0 >= r1 or c0 >= c1:
        raise ValueError(f"window ({row_off}, {col_off}, {height}, {width}) lies outside the {size}x{size} scene")
    img1, img2 = _render_background(seed, r0, r1, c0, c1)
    cls = np.zeros((r1 - r0, c1 - c0), np.uint8)
    objs: list[_Object] = []
    for ci in range((r0 - MARGIN) // CELL, (r1 - 1 + MARGIN) // CELL + 1):
        for cj in range((c0 - MARGIN) // CELL, (c1 - 1 + MARGIN) // CELL + 1):
            if 0 <= ci * CELL < size and 0 <= cj * CELL < size:
                objs.extend(_cell_objects(seed, ci, cj))
    for obj in sorted(objs, key=lambda o: o.order):
        _paint_object(obj, seed, img1, img2, cls, r0, r1, c0, c1)
    return SyntheticBlock(
        t1=_date_effects(seed, img1, r0, r1, c0, c1, 1),
        t2=_date_effects(seed, img2, r0, r1, c0, c1, 2),
        truth_class=cls,
    )
