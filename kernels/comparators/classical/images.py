"""Whole images as the scene of a classical fit: one image pair, or a dataset of pairs stacked into one scene.

``s2c-batch eval`` fits the classical comparators to each image pair of a dataset (the
paper's protocol: each pair is a scene) or once to the whole dataset. Both are the scene
fit of :mod:`~s2c_batch.kernels.comparators.classical.fitting`, whose rounds are applied
here to whole images instead of a run's blocks: an :class:`ImageStack` lays the pairs top to
bottom in one scene, pair ``i`` starting on row ``origins[i]`` (a multiple of :data:`ALIGN`)
and column 0, everything outside a pair invalid. Each pair is one block of the stack, read
with a halo of invalid pixels around it, so no neighbourhood reaches from one pair into
another, and a stack of one pair is that pair as a scene: its fit is a run's fit of the
image (the same rounds, cells and sample).

Example:
    >>> stack = ImageStack(((3, 4), (2, 5)))
    >>> stack.origins, stack.scene_shape
    ((0, 360360), (360362, 5))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2c_batch.kernels.comparators.classical.fitting import FitRound, RoundRunner
from s2c_batch.kernels.raster.tiling import Window

#: Rows between the origins of stacked pairs divide by this: lcm(1, ..., 15), so that the
#: ``h x h`` block grid of PCA-KMeans (``h`` <= 15) and a sample lattice with a step up to 15
#: start at every pair's first pixel, as they would in a scene of that pair alone. The rows
#: in between are never read: they only number the pixels of the sample in pair order.
ALIGN = 360360

#: One image pair as a fit reads it: t1 and t2 float32 ``[C, h, w]`` in [0, 1] (0 where
#: invalid) and where both are valid, bool ``[h, w]``.
Pixels = tuple[np.ndarray, np.ndarray, np.ndarray]


def image_parts(fit_round: FitRound, t1: np.ndarray, t2: np.ndarray, valid: np.ndarray, *,
                row: int = 0) -> list[Any]:
    """A fit round over one whole image, placed at ``row`` of the scene (column 0).

    Args:
        fit_round: the round.
        t1: float32 ``[C, h, w]`` in [0, 1], 0 where invalid.
        t2: float32 ``[C, h, w]``.
        valid: bool ``[h, w]``.
        row: the image's first row in the scene.

    Returns:
        The round's parts of the image, its halo read as invalid pixels.
    """
    r = fit_round.halo
    pad = ((0, 0), (r, r), (r, r))
    h, w = valid.shape
    window = Window(row - r, -r, h + 2 * r, w + 2 * r)
    return list(fit_round.block(np.pad(t1, pad), np.pad(t2, pad), np.pad(valid, r), window, Window(row, 0, h, w)))


@dataclass(frozen=True)
class ImageStack:
    """Image pairs fitted as one scene, stacked top to bottom.

    Attributes:
        shapes: ``(height, width)`` of each pair, in the order of the stack.
    """

    shapes: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.shapes or any(h < 1 or w < 1 for h, w in self.shapes):
            raise ValueError(f"an image stack needs at least one non-empty image, got shapes {list(self.shapes)}")

    @property
    def origins(self) -> tuple[int, ...]:
        """The first row of each pair in the scene: multiples of :data:`ALIGN`, in order."""
        out, row = [], 0
        for h, _ in self.shapes:
            out.append(row)
            row += -(-h // ALIGN) * ALIGN
        return tuple(out)

    @property
    def scene_shape(self) -> tuple[int, int]:
        """``(height, width)`` of the scene (the fit's ``scene_shape``): the last pair's end, the widest pair."""
        return self.origins[-1] + self.shapes[-1][0], max(w for _, w in self.shapes)

    def runner(self, read: Callable[[int], Pixels]) -> RoundRunner:
        """What the fit calls to run a round: every pair read by ``read(i)`` and applied in order.

        Args:
            read: pair index -> its pixels (called once per pair and round).

        Raises:
            ValueError: a pair read has another shape than the stack's.
        """
        origins = self.origins

        def run(fit_round: FitRound) -> Sequence[Any]:
            parts: list[Any] = []
            for i, shape in enumerate(self.shapes):
                t1, t2, valid = read(i)
                if valid.shape != shape:
                    raise ValueError(f"pair {i} is {valid.shape[0]}x{valid.shape[1]}, the stack expected "
                                     f"{shape[0]}x{shape[1]}")
                parts.extend(image_parts(fit_round, t1, t2, valid, row=origins[i]))
            return parts

        return run
