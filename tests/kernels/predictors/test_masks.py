"""The mask-level tile predictor on the tiny random SAM 3 (detector and tracker) and DINOv2, on the CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from s2c_batch.kernels.comparators.mask_level.anychange import AnyChange
from s2c_batch.kernels.comparators.mask_level.dynamicearth import DynamicEarth
from s2c_batch.kernels.comparators.options import AMGOptions, AnyChangeOptions, ComparatorOptions, DynamicEarthOptions
from s2c_batch.kernels.comparators.registry import create_mask_comparator
from s2c_batch.kernels.errors import CheckpointError, ConfigError
from s2c_batch.kernels.models.proposals.sam import SamProposals, load_sam_pretrained, tiny_sam_config
from s2c_batch.kernels.models.proposals.tracker import TrackerProposals, build_tracker_random, load_tracker_pretrained
from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.kernels.predictors.masks import MaskChangePredictor

import comparator_oracles as oracles
from testutils import TINY_MODEL, write_sam3_dir

#: Every query counts and every proposal is kept: random weights score about 0.5.
LOOSE = dict(confidence_threshold=0.0)
AMG = AMGOptions(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
CASES = {
    "anychange": ("anychange", "none", {}),
    "anychange*": ("anychange", "segearth_ov3", {}),
    "inst_ceg": ("inst_ceg", "segearth_ov3", {}),
    "dynamicearth_imc": ("dynamicearth", "segearth_ov3", {}),
    "dynamicearth_mci": ("dynamicearth", "segearth_ov3", {"dynamicearth": DynamicEarthOptions(mode="mci")}),
    "ucd_scm": ("ucd_scm", "segearth_ov3", {}),
}


def tiles(n: int = 2, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random((n, 3, size, size), dtype=np.float32)
    b = a.copy()
    b[:, :, 10:30, 8:26] = rng.random((n, 3, 1, 1), dtype=np.float32)
    return a, b


def predictor(case: str, **model: object) -> MaskChangePredictor:
    name, identifier, options = CASES[case]
    cfg = dataclasses.replace(TINY_MODEL, comparator=name, identifier=identifier,
                              threshold="otsu" if name == "ucd_scm" else 0.5, **{**LOOSE, **model})
    pred = build_predictor(cfg)
    assert isinstance(pred, MaskChangePredictor)
    return pred.with_comparator(create_mask_comparator(name, ComparatorOptions(amg=AMG, **options)))


@pytest.mark.parametrize("case", list(CASES))
def test_predict__every_comparator_gives_probability_priority_and_classes(case: str) -> None:
    pred = predictor(case)
    a, b = tiles()
    out = pred.predict(a, b)
    assert out.prob.shape == (2, 48, 48) and out.prob.dtype == np.float32
    assert 0.0 <= out.prob.min() and out.prob.max() <= 1.0
    assert out.weight is not None and out.weight.min() == 1.0
    assert (out.class_t1 is None) == (CASES[case][1] == "none")
    assert pred.target_classes == () and (pred.targets == (3,) or CASES[case][1] == "none")
    again = pred.predict(a[1:], b[1:])  # one tile alone, in a batch of its own: the same
    np.testing.assert_allclose(again.prob[0], out.prob[1], atol=1e-5)
    if out.class_t1 is not None:
        np.testing.assert_array_equal(again.class_t1[0], out.class_t1[1])  # type: ignore[index]


def test_predict__inst_ceg_decides_on_the_identifiers_target_instances() -> None:
    pred = predictor("inst_ceg")
    a, b = tiles(n=1)
    t1, t2 = torch.from_numpy(a), torch.from_numpy(b)
    evidence, _ = pred._evidence(pred.mask_comparator(), t1, t2, torch.ones((1, 48, 48), dtype=torch.bool))
    assert evidence[0].instances is not None
    m1, m2 = (s.masks.numpy() for s in evidence[0].instances)
    assert len(m1) and len(m2)  # every query counts: the tiny model's 10 queries of the building prompt
    w1, w2 = oracles.inst_ceg(m1, m2, 0.01)
    want = oracles.union(m1[w1], (48, 48)) | oracles.union(m2[w2], (48, 48))
    np.testing.assert_array_equal(pred.predict(a, b).prob[0] > 0.5, want)
    ident = pred.identifier
    assert ident is not None
    vision = ident.vision_features(torch.cat([t1, t2]))
    scores, found = ident.decode_with_instances(vision, size=(48, 48), instance_prompts=pred.instance_prompts)
    assert torch.equal(scores, ident.decode(vision, size=(48, 48)))
    assert set(found[0].prompts.tolist()) == {ident.prompt_class.index(3)}  # "building", not "roof" / "house"


def test_predict__cores_set_the_owner_priority() -> None:
    pred = predictor("anychange*")
    a, b = tiles(n=1)
    cores = np.zeros((1, 48, 48), bool)
    assert pred.predict(a, b, cores).weight.max() == 1.0  # type: ignore[union-attr]
    assert pred.predict(a, b).weight.max() > 1.0  # type: ignore[union-attr]


def test_parts__built_on_first_use_and_shared_by_views() -> None:
    base = build_predictor(dataclasses.replace(TINY_MODEL, comparator="dynamicearth", **LOOSE))
    assert isinstance(base, MaskChangePredictor) and base._parts["proposals"] is None
    view = base.with_comparator(DynamicEarth(amg=AMG, dynamicearth=DynamicEarthOptions(mode="mci")))
    view.predict(*tiles(n=1))
    head = base._parts["proposals"]
    assert isinstance(head, TrackerProposals)
    assert head.tracker.vision_encoder.backbone is base.identifier.sam3.vision_encoder.backbone  # type: ignore[union-attr]
    any_dino = build_predictor(dataclasses.replace(TINY_MODEL, comparator="anychange", **LOOSE))
    assert isinstance(any_dino, MaskChangePredictor) and any_dino.backbone is None
    any_dino.with_comparator(AnyChange(anychange=AnyChangeOptions(features="dinov2"))).predict(
        *tiles(n=1))
    assert any_dino._parts["backbone"] is not None


def test_dinov2__needs_the_checkpoint_without_random_init() -> None:
    pred = build_predictor(dataclasses.replace(TINY_MODEL, comparator="anychange", **LOOSE))
    assert isinstance(pred, MaskChangePredictor)
    pred.config = dataclasses.replace(TINY_MODEL, comparator="anychange", random_init=False)
    with pytest.raises(ConfigError, match="anychange.features=dinov2 needs model.backbone_checkpoint"):
        pred.dinov2()


def test_predict__refuses_other_than_three_bands() -> None:
    pred = predictor("anychange")
    a = np.zeros((1, 4, 32, 32), np.float32)
    with pytest.raises(ConfigError, match="input.bands"):
        pred.predict(a, a)


def test_tracker_embed__from_the_identifiers_backbone_pass_equals_its_own() -> None:
    pred = predictor("ucd_scm")
    head, ident = pred.proposals(), pred.identifier
    assert ident is not None
    x = torch.from_numpy(tiles(n=2)[0])
    own = head.embed(x)
    shared = head.embed(hidden=ident.vision_features(x).last_hidden_state)
    for p, q in zip(own.levels, shared.levels, strict=True):
        torch.testing.assert_close(p, q)


def test_load_tracker_pretrained__a_detector_only_directory_is_refused(tmp_path: Path) -> None:
    write_sam3_dir(tmp_path / "sam3", image_size=84)
    with pytest.raises(CheckpointError, match="tracker"):
        load_tracker_pretrained(tmp_path / "sam3")
    build_tracker_random("tiny", image_size=84).save_pretrained(str(tmp_path / "tracker"))
    loaded = load_tracker_pretrained(tmp_path / "tracker")
    assert loaded.config.prompt_encoder_config.image_size == 84
    with pytest.raises(CheckpointError, match="no config.json"):
        load_tracker_pretrained(tmp_path / "missing")


def test_original_sam__proposals_and_anychange_features_from_a_sam_directory(tmp_path: Path) -> None:
    from transformers import SamModel

    SamModel(tiny_sam_config()).save_pretrained(str(tmp_path / "sam"))
    cfg = dataclasses.replace(TINY_MODEL, comparator="anychange", identifier="none", random_init=False,
                              sam_checkpoint=str(tmp_path / "sam"))
    assert cfg.required_checkpoints() == ("sam_checkpoint",)  # no SAM 3 needed
    pred = build_predictor(cfg)
    assert isinstance(pred, MaskChangePredictor)
    head = pred.proposals()
    assert isinstance(head, SamProposals) and head.input_size == 128
    x = torch.from_numpy(tiles(n=1)[0])
    emb = head.embed(x)
    norm = head.sam.vision_encoder.neck.layer_norm2
    torch.testing.assert_close(emb.features * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1),
                               emb.levels[0])
    logits, iou = head.prompter(emb, 0)(torch.tensor([[0.5, 0.5], [0.2, 0.7]]))
    assert logits.shape[:2] == (2, 3) and iou.shape == (2, 3)
    out = pred.with_comparator(AnyChange(amg=AMG)).predict(*tiles(n=1))
    assert out.prob.shape == (1, 48, 48) and out.class_t1 is None
    with pytest.raises(CheckpointError, match="facebook/sam-vit-huge"):
        load_sam_pretrained(tmp_path / "nothing")
