"""The tile predictor: outputs, determinism, checkpoint errors naming the key, config validation."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from s2c_batch.kernels.comparators.classical.cva import cva_probability
from s2c_batch.kernels.errors import CheckpointError, ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.cach import build_cach
from s2c_batch.kernels.models.identifier.vocab import load_vocabulary
from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.kernels.predictors.host import CVAPredictor
from s2c_batch.kernels.predictors.tile import ChangePredictor

from testutils import TINY_MODEL, output_dtypes, write_sam3_dir

REF = Path(__file__).resolve().parents[2] / "data" / "reference"

TINY = TINY_MODEL


def _tiles(n: int = 3, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, size, size), dtype=np.float32), rng.random((n, 3, size, size), dtype=np.float32)


@pytest.fixture(scope="module")
def tiny() -> ChangePredictor:
    pred = build_predictor(TINY)
    assert isinstance(pred, ChangePredictor)
    return pred


def test_predict__shapes_dtypes_and_ranges(tiny: ChangePredictor) -> None:
    a, b = _tiles()
    out = tiny.predict(a, b)
    assert out.prob.shape == (3, 64, 64) and out.prob.dtype == np.float32
    assert 0.0 <= out.prob.min() and out.prob.max() <= 1.0
    for cls in (out.class_t1, out.class_t2):
        assert cls is not None and cls.shape == (3, 64, 64) and cls.dtype == np.uint8
        assert int(cls.max()) < len(tiny.class_names)
    assert tiny.class_names == ("background", "bareland", "water", "building")
    assert tiny.target_classes == (3,)


def test_predict__same_from_a_background_thread(tiny: ChangePredictor) -> None:
    """Block tasks on a GPU predict in a prefetch thread: grad mode and autocast are per thread."""
    from concurrent.futures import ThreadPoolExecutor

    assert tiny.device_async is False  # CPU: the block task blends in turn, no prefetch thread
    a, b = _tiles(seed=4)
    here = tiny.predict(a, b)
    with ThreadPoolExecutor(1) as pool:
        there = pool.submit(tiny.predict, a, b).result()
    np.testing.assert_array_equal(there.prob, here.prob)
    np.testing.assert_array_equal(there.class_t1, here.class_t1)
    np.testing.assert_array_equal(there.class_t2, here.class_t2)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler (c++ or g++ on PATH)")
def test_predict__compiled_parts_give_the_eager_result(tiny: ChangePredictor) -> None:
    """``model.compile`` compiles modules in place: same weights, same outputs (to float rounding)."""
    pred = build_predictor(dataclasses.replace(TINY, compile=("backbone", "vision", "detector")))
    assert isinstance(pred, ChangePredictor) and pred.compiled == ("backbone", "vision", "detector")
    assert pred.identifier is not None and pred.backbone is not None
    assert pred.identifier.state_dict().keys() == tiny.identifier.state_dict().keys()  # type: ignore[union-attr]
    for n in (3, 1):  # a second batch size: recompiled, still equal
        a, b = _tiles(n=n, seed=6 + n)
        want, got = tiny.predict(a, b), pred.predict(a, b)
        np.testing.assert_allclose(got.prob, want.prob, atol=1e-5)
        for g, w in ((got.class_t1, want.class_t1), (got.class_t2, want.class_t2)):
            assert g is not None and w is not None and (g == w).mean() > 0.999


def test_predict__cpu_runs_fp32_everywhere(tiny: ChangePredictor) -> None:
    """The precision split (comparator fp32, identifier bf16) is for CUDA; the CPU runs fp32."""
    assert (tiny.precision, tiny.comparator_precision, tiny.tf32) == ("bf16", "fp32", True)
    assert tiny.identifier is not None and tiny.backbone is not None and tiny.cach is not None
    sam3 = tiny.identifier.sam3
    parts = {"backbone": tiny.backbone, "cach": tiny.cach, "geometry": sam3.geometry_encoder,
             "detr_encoder": sam3.detr_encoder, "mask_decoder": sam3.mask_decoder}
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    with output_dtypes(parts) as seen:
        tiny.predict(*_tiles(1, size=32))
    assert {name: seen[name] for name in parts} == {name: {torch.float32} for name in parts}
    assert seen["tf32"] == {before}  # the TF32 flags are only touched on CUDA


def test_model_config__compile_parts_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"model.compile names unknown parts \['sam3'\]; choose from"):
        dataclasses.replace(TINY, compile=("vision", "sam3"))
    cva = build_predictor(dataclasses.replace(TINY, comparator="cva", compile=("backbone",)))
    assert isinstance(cva, ChangePredictor) and cva.compiled == ()  # no DINOv2 to compile: ignored


def test_predict__deterministic_across_builds_and_batch_sizes(tiny: ChangePredictor) -> None:
    a, b = _tiles(seed=1)
    first = tiny.predict(a, b)
    other = build_predictor(dataclasses.replace(TINY, batch_size=3))
    second = other.predict(a, b)
    np.testing.assert_allclose(second.prob, first.prob, atol=1e-5)
    assert tiny.identifier is not None
    for tiles, got, want in ((a, second.class_t1, first.class_t1), (b, second.class_t2, first.class_t2)):
        differ = got != want
        assert differ.mean() < 1e-3
        if differ.any():  # only float32 ties (the batch size changes the BLAS path): the top two within 1e-5
            with torch.no_grad():
                scores = tiny.identifier.class_scores(torch.from_numpy(tiles)).numpy()
            top2 = np.sort(np.moveaxis(scores, 1, -1)[differ], axis=-1)[:, -2:]
            np.testing.assert_allclose(top2[:, 1], top2[:, 0], atol=1e-5)


def test_predict__pairs_are_independent(tiny: ChangePredictor) -> None:
    a, b = _tiles(seed=2)
    whole = tiny.predict(a, b)
    last = tiny.predict(a[2:], b[2:])
    np.testing.assert_allclose(last.prob[0], whole.prob[2], atol=1e-5)
    np.testing.assert_array_equal(last.class_t2[0], whole.class_t2[2])


def test_predict__empty_batch(tiny: ChangePredictor) -> None:
    a, b = _tiles(n=0)
    out = tiny.predict(a, b)
    assert out.prob.shape == (0, 64, 64) and out.class_t1 is not None and out.class_t1.shape == (0, 64, 64)


def test_predict__needs_three_bands(tiny: ChangePredictor) -> None:
    a, b = _tiles()
    with pytest.raises(ConfigError, match="input.bands"):
        tiny.predict(a[:, :1], b[:, :1])


def test_predict__identifier_none_gives_change_alone() -> None:
    pred = build_predictor(dataclasses.replace(TINY, identifier="none"))
    out = pred.predict(*_tiles(n=1))
    assert out.class_t1 is None and out.class_t2 is None
    assert pred.class_names == () and pred.target_classes == ()


def test_predict__cva_comparator_with_identifier() -> None:
    pred = build_predictor(dataclasses.replace(TINY, comparator="cva"))
    a, b = _tiles(n=2)
    out = pred.predict(a, b)
    np.testing.assert_array_equal(out.prob, cva_probability(a, b, axis=1))
    assert out.class_t1 is not None


def test_predict__imagenet_normalisation_changes_change_map(tiny: ChangePredictor) -> None:
    a, b = _tiles(n=1)
    other = build_predictor(dataclasses.replace(TINY, identifier="none", normalize="imagenet"))
    assert np.abs(other.predict(a, b).prob - tiny.predict(a, b).prob).max() > 1e-4


def test_build_predictor__cva_without_identifier() -> None:
    assert isinstance(build_predictor(ModelConfig(comparator="cva", identifier="none")), CVAPredictor)


def test_build_predictor__official_cach_checkpoint(tmp_path: Path) -> None:
    cfg = ModelConfig(
        device="cpu",
        identifier="none",
        backbone="base",
        backbone_input_size=252,
        cach_checkpoint=str(REF / "cach_official_layout_random.safetensors"),
        random_init=True,
    )
    pred = build_predictor(cfg)
    from safetensors.torch import load_file

    weight = load_file(str(REF / "cach_official_layout_random.safetensors"))["diff_fdr2.conv_cat.0.weight"]
    torch.testing.assert_close(pred.cach.bdfm[2].fuse[0].weight, weight.float())


@pytest.mark.parametrize(
    "changes, match",
    [
        ({}, r"model\.backbone_checkpoint is not set.*dinov2_vitb14_pretrain\.pth"),
        (
            {"backbone_checkpoint": "absent/dinov2.pth"},
            r"model\.backbone_checkpoint = 'absent/dinov2\.pth' does not exist",
        ),
        (
            {"comparator": "cva", "sam3_checkpoint": "absent/sam3"},
            r"model\.sam3_checkpoint = 'absent/sam3' does not exist.*facebook/sam3",
        ),
        ({"random_init": True, "cach_checkpoint": "absent/best.pth"}, r"model\.cach_checkpoint = 'absent/best\.pth'"),
    ],
)
def test_build_predictor__missing_checkpoint_names_the_key(changes: dict[str, object], match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        build_predictor(ModelConfig(device="cpu", **changes))


def test_build_predictor__cach_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "small_head.safetensors"
    save_file(build_cach("small").state_dict(), str(path))
    cfg = dataclasses.replace(TINY, identifier="none", cach_checkpoint=str(path))
    with pytest.raises(CheckpointError, match=r"model\.cach_checkpoint = .*another architecture"):
        build_predictor(cfg)


def test_build_predictor__sam3_directory_without_config(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, comparator="cva", sam3_checkpoint=str(tmp_path))
    with pytest.raises(CheckpointError, match=r"model\.sam3_checkpoint = .*no config\.json"):
        build_predictor(cfg)


def test_build_predictor__bf16_declared_sam3_checkpoint_loads_in_float32(tmp_path: Path) -> None:
    import json

    from safetensors.torch import load_file

    sam3_dir = write_sam3_dir(tmp_path / "sam3", dtype="bfloat16")
    assert json.loads((sam3_dir / "config.json").read_text())["dtype"] == "bfloat16"
    pred = build_predictor(dataclasses.replace(TINY, comparator="cva", sam3_checkpoint=str(sam3_dir)))
    assert isinstance(pred, ChangePredictor) and pred.identifier is not None
    sam3 = pred.identifier.sam3
    assert {p.dtype for p in sam3.parameters()} == {torch.float32}
    # The stored bf16 values, exactly, in float32.
    stored = load_file(str(sam3_dir / "model.safetensors"))
    weight = sam3.geometry_encoder.cls_embed.weight
    torch.testing.assert_close(weight, stored["geometry_encoder.cls_embed.weight"].float(), atol=0, rtol=0)
    out = pred.predict(*_tiles(1, size=32))
    assert out.class_t1 is not None and out.class_t1.shape == (1, 32, 32)


def test_load_vocabulary__unknown_name() -> None:
    with pytest.raises(ConfigError, match=r"no packaged vocabulary.*whu_levir"):
        load_vocabulary("nowhere")


def test_build_predictor__unknown_target() -> None:
    with pytest.raises(ConfigError, match=r"model\.targets names unknown classes \['house'\]"):
        build_predictor(dataclasses.replace(TINY, comparator="cva", targets=("house",)))


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("backbone_input_size", 500, r"model\.backbone_input_size must be a positive multiple of 252"),
        ("identifier_input_size", 1000, r"model\.identifier_input_size must be a positive multiple of 14"),
        ("prob_thd", 1.5, r"model\.prob_thd must be within \[0, 1\]"),
        ("confidence_threshold", -0.1, r"model\.confidence_threshold must be within \[0, 1\]"),
        ("decoder_batch", 0, r"model\.decoder_batch must be >= 1"),
    ],
)
def test_model_config__range_errors_name_the_key(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**{key: value})


def test_predict_raw__uint8_scaled_on_device_equals_predict(tiny: ChangePredictor) -> None:
    from s2c_batch.kernels.prediction import predict_raw, to_unit

    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    raw = predict_raw(tiny, a, b, 255.0)
    ref = tiny.predict(to_unit(a, 255.0), to_unit(b, 255.0))
    np.testing.assert_allclose(raw.prob, ref.prob, atol=1e-6)
    np.testing.assert_array_equal(raw.class_t1, ref.class_t1)
