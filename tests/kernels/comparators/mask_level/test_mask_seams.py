"""Objects on tile borders: the owner tile decides each one, so the blended products have no seam.

A stand-in predictor finds objects as connected components of each date and runs a real
mask-level decision rule on them, tile by tile, through the real blend
(:func:`accumulate_tiles`, :func:`combine_partials`). The whole scene decided as one tile is
the oracle: with the owner priority the blended products equal it; without it, the tiles that
see an object cut decide it differently and the blend shows it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileEvidence
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet
from s2c_batch.kernels.comparators.registry import create_mask_comparator
from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.raster.blend import accumulate_tiles, combine_partials
from s2c_batch.kernels.raster.tiling import TilePlan, Window, axis_cores, tile_core

N, TILE, OVERLAP = 96, 32, 16
RED, GREEN, GREY = (230, 25, 25), (25, 230, 25), (128, 128, 128)


def components(image: np.ndarray) -> np.ndarray:
    """The objects of one date: connected components of the pixels far from grey, bool ``[n, H, W]``."""
    fg = np.abs(image.astype(np.float32) - 0.5).sum(axis=0) > 0.3
    labels, n = ndimage.label(fg)
    return np.stack([labels == i for i in range(1, n + 1)]) if n else np.zeros((0, *fg.shape), bool)


def decide(spec: MaskComparator, t1: np.ndarray, t2: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule on one image pair in [0, 1]: (probability, priority)."""
    masks = [MaskSet(torch.from_numpy(components(x)), torch.full((len(components(x)),), 0.9)) for x in (t1, t2)]
    ev = TileEvidence(size=t1.shape[1:], core=torch.from_numpy(core), instances=(masks[0], masks[1]),
                      features=(torch.from_numpy(t1 - 0.5), torch.from_numpy(t2 - 0.5)))
    d = spec.decide(ev)
    return d.prob.numpy(), d.weight.numpy()


class ComponentPredictor:
    """Tiles in, the rule's probability and priority out (no model)."""

    class_names: tuple[str, ...] = ()
    target_classes: tuple[int, ...] = ()
    owns_objects = True

    def __init__(self, spec: MaskComparator, *, owner: bool) -> None:
        self.spec, self.owner = spec, owner

    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray, cores: np.ndarray | None = None) -> Prediction:
        assert cores is not None and cores.shape == (len(tiles_t1), TILE, TILE)
        out = [decide(self.spec, a, b, c) for a, b, c in zip(tiles_t1, tiles_t2, cores, strict=True)]
        prob = np.stack([p for p, _ in out])
        return Prediction(prob=prob, weight=np.stack([w for _, w in out]) if self.owner else None)


def square(img: np.ndarray, r: int, c: int, colour: tuple[int, int, int], side: int = 5) -> None:
    img[:, r : r + side, c : c + side] = np.array(colour, np.uint8)[:, None, None]


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Objects that moved by a few pixels, appeared, vanished or changed colour, many across tile edges."""
    rng = np.random.default_rng(0)
    t1 = np.full((3, N, N), 128, np.uint8) + rng.integers(-3, 4, (3, N, N)).astype(np.uint8)
    t2 = t1.copy()
    edges = [16, 32, 48, 64, 80]  # tile starts and ends (stride 16)
    for k, e in enumerate(edges):
        r = 6 + 18 * k
        square(t1, r, e - 3, RED)  # moved right by 3 across the edge: overlapping itself
        square(t2, r, e, RED)
        square(t1, e - 2, 6 + 18 * k, GREEN)  # moved down by 2 across the edge
        square(t2, e, 6 + 18 * k, GREEN)
        square(t2, r + 8, e - 2, GREEN)  # appeared across the edge
        square(t1, e - 2, 88 - 6 * k, RED)  # vanished (rows across the edge)
        square(t1, e + 6, e - 3, RED)  # red became green, in place
        square(t2, e + 6, e - 3, GREEN)
    return t1, t2


@pytest.mark.parametrize("name", ["inst_ceg", "anychange"])
def test_blended_products__equal_the_whole_scene_decision_with_owner_priority(
        name: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    t1, t2 = pair
    spec = create_mask_comparator(name)
    want, _ = decide(spec, t1 / np.float32(255), t2 / np.float32(255), np.ones((N, N), bool))
    assert 0 < (want > 0.5).mean() < 0.2  # the scene holds changes and non-changes
    plan = TilePlan(N, N, TILE, OVERLAP, N)
    block = plan.block_at(0, 0)

    def blended(owner: bool) -> np.ndarray:
        partial = accumulate_tiles(t1, t2, np.ones((N, N), bool), block=block, shape=(N, N), overlap=OVERLAP,
                                   predictor=ComponentPredictor(spec, owner=owner), batch_size=7, scale=255.0)
        return combine_partials([partial], block.core).prob

    got = blended(owner=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_array_equal(got > 0.5, want > 0.5)
    seams = np.abs(blended(owner=False) - want)
    assert seams.max() > 0.05  # without the owner priority cut objects blend into seams (> 12 levels of 254)


def test_tile_core__cores_partition_the_scene_and_lie_in_their_tiles() -> None:
    plan = TilePlan(100, 75, 32, 12, 64)
    seen = np.zeros(plan.shape, int)
    for block in plan.blocks():
        for tile in block.tiles:
            core = tile_core(tile, plan.shape, plan.overlap)
            assert core.intersection(tile) == core
            seen[core.slices()] += 1
    assert (seen == 1).all()
    assert axis_cores(30, 32, 12).tolist() == [[0, 30]]
    assert tile_core(Window(0, 0, 32, 32), (30, 30), 12) == Window(0, 0, 30, 30)
