"""CACH against the authors' forward (reference vectors) and its own contracts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s2c_batch.kernels.errors import CheckpointError
from s2c_batch.kernels.models.cach import CACH, build_cach, convert_official_state_dict, official_key_to_ours

REF = Path(__file__).resolve().parents[2] / "data" / "reference"


def _official_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = (REF / "cach_official_keys.tsv").read_text().splitlines()[1:]
    out = []
    for row in rows:
        key, shape = row.split("\t")
        out.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return out


def _features(inputs: dict[str, torch.Tensor], date: str) -> list[torch.Tensor]:
    # u @ v is [1, 1296, 768] row-major tokens of a 36x36 grid.
    return [
        (inputs[f"u_{date}_{i}"] @ inputs[f"v_{date}_{i}"]).transpose(1, 2).reshape(1, 768, 36, 36)
        for i in range(4)
    ]


RefRun = tuple[CACH, list[torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def reference_run() -> RefRun:
    sd = {k: v.float() for k, v in load_file(str(REF / "cach_official_layout_random.safetensors")).items()}
    model = CACH().eval()
    model.load_state_dict(convert_official_state_dict(sd), strict=True)
    inputs = load_file(str(REF / "cach_inputs.safetensors"))
    return model, _features(inputs, "a"), _features(inputs, "b"), load_file(str(REF / "cach_outputs.safetensors"))


def test_cach__reproduces_official_outputs(reference_run: RefRun) -> None:
    model, fa, fb, ref = reference_run
    with torch.no_grad():
        out = model(fa, fb, return_aux=True)
    torch.testing.assert_close(out.change, ref["output"], atol=1e-5, rtol=0)
    # float16-stored references: within their rounding (half an ulp is 2.4e-4 near 0.6).
    for ours, name in zip(out[1:], ("output1", "output2", "output3", "outputA", "outputB"), strict=True):
        torch.testing.assert_close(ours, ref[name].float(), atol=3e-4, rtol=0, msg=name)


def test_cach__inference_equals_training_change(reference_run: RefRun) -> None:
    model, fa, fb, _ = reference_run
    with torch.no_grad():
        change = model(fa, fb)
        full = model(fa, fb, return_aux=True)
    assert change.shape == (1, 2, 504, 504)
    torch.testing.assert_close(change, full.change, atol=0, rtol=0)


def test_cach__swapping_dates_changes_output(reference_run: RefRun) -> None:
    model, fa, fb, ref = reference_run
    with torch.no_grad():
        swapped = model(fb, fa)
    assert (swapped - ref["output"]).abs().mean() > 1e-3


def test_cach__parameter_count_matches_authors() -> None:
    model = CACH()
    sd = model.state_dict()
    assert len(sd) == 324
    assert sum(v.numel() for v in sd.values()) == 3_949_248
    # 4 relative-position index buffers of 81x81 are the only non-parameters.
    assert sum(p.numel() for p in model.parameters()) == 3_949_248 - 4 * 81 * 81


def test_convert_official_state_dict__maps_every_key_with_its_shape() -> None:
    ours = {k: tuple(v.shape) for k, v in CACH().state_dict().items()}
    mapped = {official_key_to_ours(k): shape for k, shape in _official_keys()}
    assert mapped == ours


def test_convert_official_state_dict__unwraps_and_strips_module_prefix() -> None:
    sd = {"module.adapterA.0.bias": torch.zeros(48)}
    assert list(convert_official_state_dict({"model": sd})) == ["fmm.adapters_t1.0.bias"]


def test_convert_official_state_dict__foreign_key() -> None:
    with pytest.raises(CheckpointError, match="another architecture"):
        convert_official_state_dict({"backbone.blocks.0.attn.qkv.weight": torch.zeros(1)})


@pytest.mark.parametrize("size, width", [("tiny", 64), ("small", 384)])
def test_build_cach__small_grid_and_width(size: str, width: int) -> None:
    model = build_cach(size).eval()
    feats = [torch.randn(2, width, 18, 18) for _ in range(4)]
    with torch.no_grad():
        out = model(feats, [f.flip(0) for f in feats])
    assert out.shape == (2, 2, 252, 252)
    # The batch items are independent: item 0 alone gives the same logits.
    with torch.no_grad():
        single = model([f[:1] for f in feats], [f.flip(0)[:1] for f in feats])
    torch.testing.assert_close(single, out[:1], atol=1e-5, rtol=1e-5)


def test_cach__grid_not_divisible_by_window() -> None:
    model = build_cach("tiny")
    feats = [torch.randn(1, 64, 14, 14) for _ in range(4)]
    with pytest.raises(ValueError, match="not divisible by the window"):
        model(feats, feats)
