"""Blending tiles into blocks, and the product encodings."""

from __future__ import annotations

import threading

import numpy as np

from s2c_batch.kernels.comparators.classical.cva import cva_probability
from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.predictors.host import CVAPredictor
from s2c_batch.kernels.raster.blend import accumulate_tiles, combine_partials, split_partial
from s2c_batch.kernels.raster.encode import encode_products
from s2c_batch.kernels.raster.tiling import TilePlan


class ConstantPerTile:
    """Predicts a tile-specific constant probability and class (tests normalisation)."""

    class_names = ("background", "building")
    target_classes = (1,)

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, a: np.ndarray, b: np.ndarray) -> Prediction:
        n, _, h, w = a.shape
        vals = (a[:, 0, 0, 0] * 0 + 0.25).astype(np.float32)  # same constant for all tiles
        self.calls += 1
        prob = np.broadcast_to(vals[:, None, None], (n, h, w)).astype(np.float32)
        cls = np.ones((n, h, w), np.uint8)
        return Prediction(prob=prob, class_t1=cls, class_t2=cls * 0)


def _scene(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((3, h, w), dtype=np.float32), rng.random((3, h, w), dtype=np.float32)


def _run_blocks(a: np.ndarray, b: np.ndarray, plan: TilePlan, predictor: object,
                valid_full: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Both blending steps over every block, as the pipeline's tasks do them."""
    out = np.full(plan.shape, np.nan, np.float32)
    cls = None
    if valid_full is None:
        valid_full = np.ones(plan.shape, bool)
    pieces: dict[tuple[int, int], dict] = {}
    for blk in plan.blocks():
        if blk.read is None:
            sa = sb = np.zeros((3, 0, 0), np.float32)
            v = np.zeros((0, 0), bool)
        else:
            r = blk.read
            pad_h, pad_w = max(0, r.row_stop - plan.height), max(0, r.col_stop - plan.width)
            sa = np.pad(a[:, r.row : r.row_stop, r.col : r.col_stop], ((0, 0), (0, pad_h), (0, pad_w)))
            sb = np.pad(b[:, r.row : r.row_stop, r.col : r.col_stop], ((0, 0), (0, pad_h), (0, pad_w)))
            v = np.pad(valid_full[r.row : r.row_stop, r.col : r.col_stop], ((0, pad_h), (0, pad_w)))
        part = accumulate_tiles(sa, sb, v, block=blk, shape=plan.shape, overlap=plan.overlap,
                                predictor=predictor, batch_size=3)  # type: ignore[arg-type]
        dest = {d: plan.block_at(*d).core for d in plan.destinations(*blk.index)}
        pieces[blk.index] = split_partial(part, dest)
    for blk in plan.blocks():
        res = combine_partials([pieces[s][blk.index] for s in plan.sources(*blk.index)], blk.core)
        out[blk.core.slices()] = np.where(res.valid, res.prob, np.nan)
        if res.class_t1 is not None:
            if cls is None:
                cls = np.zeros(plan.shape, np.uint8)
            cls[blk.core.slices()] = res.class_t1
    return out, cls


def test_predict_block__cva_equals_whole_scene_for_any_block_size() -> None:
    a, b = _scene(300, 410)
    expected = cva_probability(a, b)
    for block in (96, 100, 200, 1000):
        got, _ = _run_blocks(a, b, TilePlan(300, 410, 96, 32, block), CVAPredictor())
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_predict_block__scene_smaller_than_a_tile() -> None:
    a, b = _scene(40, 50)
    got, _ = _run_blocks(a, b, TilePlan(40, 50, 96, 32, 96), CVAPredictor())
    np.testing.assert_allclose(got, cva_probability(a, b), atol=2e-6)


def test_predict_block__weights_are_normalised() -> None:
    a, b = _scene(200, 200)
    got, cls = _run_blocks(a, b, TilePlan(200, 200, 64, 24, 80), ConstantPerTile())
    np.testing.assert_allclose(got, 0.25, atol=1e-6)
    assert cls is not None and (cls == 1).all()


def test_accumulate_tiles__skips_tiles_without_valid_pixels() -> None:
    a, b = _scene(128, 128)
    plan = TilePlan(128, 128, 64, 0, 128)
    blk = plan.block_at(0, 0)
    valid = np.zeros((128, 128), bool)
    valid[:10, :10] = True
    pred = ConstantPerTile()
    part = accumulate_tiles(a, b, valid, block=blk, shape=plan.shape, overlap=0, predictor=pred,
                            batch_size=8)
    res = combine_partials([part], blk.core)
    assert pred.calls == 1
    assert np.isnan(res.prob[100, 100]) and res.prob[0, 0] == np.float32(0.25)
    assert res.valid[0, 0] and not res.valid[100, 100]
    assert res.class_t1 is not None and res.class_t1[0, 0] == 1


def test_blend__class_maps_do_not_depend_on_block_size() -> None:
    a, b = _scene(230, 260)
    ref = None
    for block in (48, 64, 100, 300):
        plan = TilePlan(230, 260, 48, 17, block)
        # Predict each tile on its own so the class value is the tile's global id.
        _, cls = _run_blocks(a, b, plan, _PerTileId(plan))
        ref = cls if ref is None else ref
        assert (cls == ref).all(), f"class map differs for block {block}"


class _PerTileId:
    class_names = ("x",)
    target_classes = ()

    def __init__(self, plan: TilePlan) -> None:
        self.plan = plan

    def predict(self, a: np.ndarray, b: np.ndarray) -> Prediction:
        n, _, h, w = a.shape
        # tiles are identified by their mean pixel value pattern: use the first pixel of band 0
        ids = np.round(a[:, 0, 0, 0] * 250).astype(np.uint8)
        cls = np.broadcast_to(ids[:, None, None], (n, h, w)).copy()
        return Prediction(prob=np.zeros((n, h, w), np.float32), class_t1=cls, class_t2=cls)


def test_encode_products__encodings_and_nodata() -> None:
    p = np.array([[0.0, 0.49, 0.51, 1.0, np.nan]], np.float32)
    v = np.array([[True, True, True, False, True]])
    out = encode_products(p, v, threshold=0.5)
    assert out["change_prob"].tolist() == [[0, 124, 130, 255, 255]]
    assert out["change_mask"].tolist() == [[0, 0, 1, 255, 255]]


def test_encode_products__tie_is_no_change() -> None:
    """The authors' argmax over two logits gives class 0 on a tie: p == threshold is unchanged."""
    p = np.array([[np.nextafter(np.float32(0.5), np.float32(0)), 0.5, np.nextafter(np.float32(0.5), np.float32(1))]],
                 np.float32)
    out = encode_products(p, np.ones((1, 3), bool), threshold=0.5)
    assert out["change_mask"].tolist() == [[0, 0, 1]]
    assert encode_products(np.zeros((1, 1), np.float32), np.ones((1, 1), bool), threshold=0.0)["change_mask"] == 0
    assert encode_products(np.ones((1, 1), np.float32), np.ones((1, 1), bool), threshold=1.0)["change_mask"] == 0


def test_encode_products__target_classes_gate_the_mask() -> None:
    p = np.full((1, 4), 0.9, np.float32)
    v = np.ones((1, 4), bool)
    c1 = np.array([[0, 8, 0, 3]], np.uint8)
    c2 = np.array([[0, 0, 8, 3]], np.uint8)
    out = encode_products(p, v, threshold=0.5, class_t1=c1, class_t2=c2, target_classes=(8,),
                          with_classes=True)
    assert out["change_mask"].tolist() == [[0, 1, 1, 0]]
    assert out["class_t1"].tolist() == [[0, 8, 0, 3]]


def test_encode_products__class_maps_nodata_when_block_had_no_tiles() -> None:
    p = np.full((2, 2), np.nan, np.float32)
    out = encode_products(p, np.zeros((2, 2), bool), threshold=0.5, with_classes=True)
    assert (out["class_t1"] == 255).all() and (out["change_mask"] == 255).all()


def test_accumulate_tiles__prefetch_gives_the_same_sums() -> None:
    """Predicting the next batch in a thread while blending this one changes nothing."""
    a, b = _scene(230, 260, seed=3)
    plan = TilePlan(230, 260, 48, 17, 100)
    blk = plan.block_at(0, 0)
    r = blk.read
    assert r is not None
    v = np.ones((r.height, r.width), bool)
    v[:30, :40] = False
    sa, sb = a[:, r.row : r.row_stop, r.col : r.col_stop], b[:, r.row : r.row_stop, r.col : r.col_stop]
    pred = _PerTileId(plan)
    threads: list[str] = []
    original = pred.predict

    def recording(x: np.ndarray, y: np.ndarray) -> Prediction:
        threads.append(threading.current_thread().name)
        p = original(x, y)
        return Prediction(prob=cva_probability(x, y, axis=1), class_t1=p.class_t1, class_t2=p.class_t2)

    pred.predict = recording  # type: ignore[method-assign]
    runs = {}
    for prefetch in (False, True):
        threads.clear()
        runs[prefetch] = accumulate_tiles(sa, sb, v, block=blk, shape=plan.shape, overlap=plan.overlap,
                                          predictor=pred, batch_size=2, prefetch=prefetch)  # type: ignore[arg-type]
        main = threading.current_thread().name
        assert len(threads) > 2
        assert all(t == main for t in threads) != prefetch, threads
    for field in ("acc", "wsum", "seen", "valid", "best_w", "best_id", "class_t1", "class_t2"):
        np.testing.assert_array_equal(getattr(runs[True], field), getattr(runs[False], field), err_msg=field)


def test_accumulate_tiles__prefetch_follows_the_predictors_device_async() -> None:
    a, b = _scene(100, 100)
    plan = TilePlan(100, 100, 48, 17, 100)
    blk = plan.block_at(0, 0)
    threads: list[str] = []

    class Async(CVAPredictor):
        device_async = True

        def predict(self, x: np.ndarray, y: np.ndarray) -> Prediction:
            threads.append(threading.current_thread().name)
            return super().predict(x, y)

    accumulate_tiles(a, b, np.ones((100, 100), bool), block=blk, shape=plan.shape, overlap=plan.overlap,
                     predictor=Async(), batch_size=1)
    assert len(threads) == len(blk.tiles) and all(t.startswith("s2c-prefetch") for t in threads), threads


def test_accumulate_tiles__on_batch_counts_the_tiles_summed_in_the_callers_thread() -> None:
    a, b = _scene(128, 128)
    plan = TilePlan(128, 128, 32, 0, 128)  # 16 tiles
    blk = plan.block_at(0, 0)
    valid = np.ones((128, 128), bool)
    valid[96:, 96:] = False  # one tile without a valid pixel: not predicted, not counted
    calls: list[tuple[int, int, str]] = []
    for prefetch in (False, True):
        calls.clear()
        accumulate_tiles(a, b, valid, block=blk, shape=plan.shape, overlap=0, predictor=CVAPredictor(),
                         batch_size=4, prefetch=prefetch,
                         on_batch=lambda done, total: calls.append((done, total, threading.current_thread().name)))
        main = threading.current_thread().name
        assert calls == [(4, 15, main), (8, 15, main), (12, 15, main), (15, 15, main)]
