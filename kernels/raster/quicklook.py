"""Pixels of the quicklook: contrast stretch, class colours, change overlay, panels.

Pure numpy on small, already downsampled arrays; the pipeline
(:mod:`s2c_batch.pipeline.products.quicklook`) reads them from overviews and writes the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2c_batch.kernels.raster.encode import NODATA

#: Colour of changed pixels when there are no class maps.
CHANGE_RGB = (230, 25, 40)

#: Colour of unknown pixels (``change_mask`` 255: a date did not observe them): no change
#: colour, no class colour, and not black, which a dark scene shows too.
UNKNOWN_RGB = (95, 140, 190)

#: Class colours, by class index modulo the table length (index 0 is the
#: background of SegEarth-OV3 and stays grey).
_PALETTE = np.array(
    [
        (150, 150, 150), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 225, 25),
    ],
    dtype=np.uint8,
)


def class_colours(n: int) -> np.ndarray:
    """uint8 ``[n, 3]`` RGB colour of classes ``0..n-1``."""
    return _PALETTE[np.arange(n) % len(_PALETTE)]


def stretch(data: np.ndarray, valid: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Percentile contrast stretch of an image to RGB bytes.

    Args:
        data: ``[C, h, w]`` values (any dtype); the first three bands are shown
            as RGB, a single band as grey.
        valid: bool ``[h, w]``; invalid pixels are black and do not set the stretch.
        low: lower percentile mapped to 0, per band.
        high: upper percentile mapped to 255, per band.

    Returns:
        uint8 ``[h, w, 3]``.
    """
    bands = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    out = np.zeros((*bands.shape[1:], 3), np.uint8)
    if not valid.any():
        return out
    for k in range(3):
        band = bands[k].astype(np.float32)
        lo, hi = np.percentile(band[valid], [low, high])
        scaled = (band - lo) / max(float(hi - lo), 1e-6)
        out[..., k] = np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def change_overlay(
    base: np.ndarray,
    mask: np.ndarray,
    classes: np.ndarray | None = None,
    *,
    n_classes: int = 0,
    dim: float = 0.45,
) -> np.ndarray:
    """The change panel: a dimmed grey background with changed pixels in colour and unknown ones in theirs.

    Args:
        base: uint8 ``[h, w, 3]`` background image (the t2 panel).
        mask: uint8 ``[h, w]`` change mask (1 changed, 255 nodata).
        classes: uint8 ``[h, w]`` class of each changed pixel (t2's class, the
            "to" class), or ``None`` to paint every change in :data:`CHANGE_RGB`.
        n_classes: size of the palette for ``classes``.
        dim: brightness of the grey background, in (0, 1].

    Returns:
        uint8 ``[h, w, 3]``; unknown pixels (nodata, not observed by a date) are
        :data:`UNKNOWN_RGB`.
    """
    grey = base.astype(np.float32).mean(axis=2, keepdims=True) * dim
    out = np.repeat(grey, 3, axis=2).astype(np.uint8)
    changed = mask == 1
    if classes is None:
        out[changed] = CHANGE_RGB
    else:
        palette = class_colours(max(n_classes, 1))
        idx = np.minimum(classes[changed], len(palette) - 1)
        out[changed] = palette[idx]
    out[mask == NODATA] = UNKNOWN_RGB
    return out


def side_by_side(panels: Sequence[np.ndarray], *, gap: int = 4, fill: int = 255) -> np.ndarray:
    """Place ``[h, w, 3]`` panels left to right with a ``gap`` of ``fill`` between them.

    Returns:
        uint8 ``[max h, sum w + gaps, 3]`` (shorter panels are padded at the bottom).
    """
    h = max(p.shape[0] for p in panels)
    w = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    out = np.full((h, w, 3), fill, np.uint8)
    x = 0
    for p in panels:
        out[: p.shape[0], x : x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def decimation(shape: tuple[int, int], max_side: int) -> tuple[int, tuple[int, int]]:
    """Integer step and output shape that fit ``shape`` into ``max_side`` pixels.

    Example:
        >>> decimation((1100, 1300), 512)
        (3, (367, 434))
    """
    step = max(1, -(-max(shape) // max_side))
    return step, (-(-shape[0] // step), -(-shape[1] // step))


def sample_positions(size: int, out: int) -> np.ndarray:
    """The pixels GDAL's nearest decimation of ``size`` pixels to ``out`` picks: ``floor((i + 0.5) * size / out)``.

    Example:
        >>> sample_positions(10, 4).tolist()
        [1, 3, 6, 8]
    """
    return np.floor((np.arange(out) + 0.5) * size / out).astype(np.int64)


def samples_within(positions: np.ndarray, start: int, stop: int) -> slice:
    """The (contiguous) run of sorted ``positions`` in ``[start, stop)``, as a slice of them.

    Example:
        >>> samples_within(np.array([1, 3, 6, 8]), 3, 8)
        slice(1, 3, None)
    """
    lo, hi = np.searchsorted(positions, [start, stop])
    return slice(int(lo), int(hi))
