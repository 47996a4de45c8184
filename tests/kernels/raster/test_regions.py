"""Changed regions of a block and their merge across seams: literal cases plus a property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from s2c_batch.kernels.raster.regions import (
    RegionStats,
    concat_stats,
    group_ids,
    label_regions,
    merge_stats,
    region_stats,
    seam_pairs,
)


def test_label_regions__four_connectivity_and_nodata_is_not_change() -> None:
    mask = np.array([[1, 0, 1],
                     [0, 1, 0],
                     [255, 1, 1]], dtype=np.uint8)
    labels, n = label_regions(mask)
    assert n == 3  # diagonal neighbours are separate regions
    assert labels.dtype == np.int32
    assert labels.tolist() == [[1, 0, 2], [0, 3, 0], [0, 3, 3]]


def test_region_stats__counts_sums_and_class_histograms() -> None:
    labels = np.array([[1, 1, 0], [0, 2, 2]], dtype=np.int32)
    prob = np.array([[254, 127, 9], [0, 200, 100]], dtype=np.uint8)
    c1 = np.array([[1, 1, 0], [0, 2, 3]], dtype=np.uint8)
    c2 = np.array([[3, 3, 0], [0, 3, 3]], dtype=np.uint8)
    s = region_stats(labels, 2, prob, c1, c2, n_classes=4)
    assert s.pixels.tolist() == [2, 2]
    assert s.prob_sum.tolist() == [381, 300]
    np.testing.assert_allclose(s.mean_prob, [381 / 508, 300 / 508])
    assert s.hist_t1.tolist() == [[0, 2, 0, 0], [0, 0, 1, 1]]
    frm, to = s.classes()
    assert frm.tolist() == [1, 2] and to.tolist() == [3, 3]  # tie 2 vs 3 -> lowest index


def test_region_stats__without_class_maps_has_no_classes() -> None:
    s = region_stats(np.ones((2, 2), np.int32), 1, np.full((2, 2), 254, np.uint8))
    assert s.classes() is None and s.mean_prob.tolist() == [1.0]


def test_seam_pairs__unique_pairs_of_touching_labels() -> None:
    assert seam_pairs(np.array([1, 1, 0, 2, 2]), np.array([4, 4, 4, 0, 5])).tolist() == [[1, 4], [2, 5]]
    assert seam_pairs(np.array([0, 1]), np.array([1, 0])).shape == (0, 2)


def test_seam_pairs__length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="seam edges differ in length"):
        seam_pairs(np.zeros(3, int), np.zeros(4, int))


def test_group_ids__transitive_chains_and_singletons() -> None:
    assert group_ids(6, np.array([[4, 2], [2, 0], [5, 3]])).tolist() == [0, 1, 0, 2, 0, 2]
    assert group_ids(3, np.zeros((0, 2), np.int64)).tolist() == [0, 1, 2]


def test_merge_stats__sums_pieces_so_means_are_pixel_weighted() -> None:
    a = RegionStats(np.array([1, 3]), np.array([254, 0]), np.array([[1, 0], [0, 3]]), np.array([[0, 1], [3, 0]]))
    b = RegionStats(np.array([4]), np.array([508]), np.array([[4, 0]]), np.array([[0, 4]]))
    merged = merge_stats(concat_stats([a, b]), np.array([0, 1, 0]))
    assert merged.pixels.tolist() == [5, 3]
    np.testing.assert_allclose(merged.mean_prob, [762 / (254 * 5), 0.0])
    assert merged.hist_t1.tolist() == [[5, 0], [0, 3]]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.integers(2, 9))
def test_seam_merge__equals_whole_scene_labelling(seed: int, bh: int, bw: int) -> None:
    """Label blocks separately, glue across seams: same regions as labelling the whole mask."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((20, 23)) < 0.45).astype(np.uint8)
    whole, n_whole = ndimage.label(mask == 1, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    blocks, offsets, total = {}, {}, 0
    for i, r in enumerate(range(0, 20, bh)):
        for j, c in enumerate(range(0, 23, bw)):
            labels, n = label_regions(mask[r : r + bh, c : c + bw])
            blocks[(i, j)] = (labels, r, c)
            offsets[(i, j)] = total
            total += n
    links = []
    for (i, j), (labels, _, _) in blocks.items():
        for other, mine, theirs in (((i, j + 1), labels[:, -1], lambda q: q[:, 0]),
                                    ((i + 1, j), labels[-1], lambda q: q[0])):
            if other in blocks:
                p = seam_pairs(mine, theirs(blocks[other][0]))
                links.append(np.stack([p[:, 0] - 1 + offsets[(i, j)], p[:, 1] - 1 + offsets[other]], 1))
    groups = group_ids(total, np.concatenate(links) if links else np.zeros((0, 2), np.int64))
    assert (groups.max() + 1 if total else 0) == n_whole
    glued = np.zeros_like(whole)
    for key, (labels, r, c) in blocks.items():
        inside = labels > 0
        glued[r : r + labels.shape[0], c : c + labels.shape[1]][inside] = groups[labels[inside] - 1 + offsets[key]] + 1
    # same partition: a one-to-one map between glued and whole labels
    pairs = {(int(a), int(b)) for a, b in zip(glued[mask == 1], whole[mask == 1], strict=True)}
    assert len(pairs) == n_whole == len({a for a, _ in pairs}) == len({b for _, b in pairs})
