"""SegEarth-OV3: the fusion on hand-made outputs, the vocabularies, and a tiny random SAM 3 end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.models.identifier import (
    SegEarthOV3,
    build_sam3_random,
    class_scores,
    hashed_token_ids,
    label_map,
    parse_vocabulary,
    prompt_scores,
    read_vocabulary,
)

VOCAB_DIR = Path(__file__).resolve().parents[3] / "configs" / "vocab"
BIG = 20.0  # sigmoid(20) = 1 - 2e-9


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))


def _fuse(masks: list[list[list[float]]], logits: list[float], presence: float, semantic: list[list[float]], *,
          thd: float = 0.1, size: tuple[int, int] = (1, 2)) -> torch.Tensor:
    return prompt_scores(
        torch.tensor(masks, dtype=torch.float32)[None],
        torch.tensor(logits, dtype=torch.float32)[None],
        torch.tensor([presence], dtype=torch.float32),
        torch.tensor(semantic, dtype=torch.float32)[None, None],
        size=size,
        confidence_threshold=thd,
    )[0]


def test_prompt_scores__instance_vs_semantic_head() -> None:
    # One query with score 0.8 (presence 1): mask 0.9 at the left pixel, 0.1 at the right.
    # Semantic head 0.3 everywhere: instance wins left (0.72), semantic wins right (0.3).
    out = _fuse([[[_logit(0.9), _logit(0.1)]]], [_logit(0.8)], BIG, [[_logit(0.3), _logit(0.3)]])
    torch.testing.assert_close(out, torch.tensor([[0.72, 0.3]]), atol=1e-6, rtol=0)


def test_prompt_scores__max_over_queries() -> None:
    masks = [[[_logit(0.5), _logit(0.5)]], [[_logit(1e-6), _logit(1.0 - 1e-7)]]]
    out = _fuse(masks, [_logit(0.9), _logit(0.6)], BIG, [[-BIG, -BIG]])
    torch.testing.assert_close(out, torch.tensor([[0.45, 0.6]]), atol=1e-5, rtol=0)


def test_prompt_scores__query_below_confidence_is_ignored() -> None:
    # Query score 0.05 < 0.1: its perfect mask does not count, only the semantic 0.2 does.
    out = _fuse([[[BIG, BIG]]], [_logit(0.05)], BIG, [[_logit(0.2), _logit(0.2)]], thd=0.1)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.2]]), atol=1e-6, rtol=0)


def test_prompt_scores__presence_scales_queries_and_result() -> None:
    # presence 0.5: query score 0.9 * 0.5 = 0.45 (kept), mask 1 -> 0.45; result * 0.5 = 0.225.
    out = _fuse([[[BIG, -BIG]]], [_logit(0.9)], 0.0, [[-BIG, _logit(0.4)]])
    torch.testing.assert_close(out, torch.tensor([[0.225, 0.2]]), atol=1e-6, rtol=0)


def test_prompt_scores__presence_removes_query_below_threshold() -> None:
    # 0.3 * presence 0.25 = 0.075 < 0.1: dropped although 0.3 alone would pass.
    out = _fuse([[[BIG, BIG]]], [_logit(0.3)], _logit(0.25), [[-BIG, -BIG]])
    torch.testing.assert_close(out, torch.zeros(1, 2), atol=1e-6, rtol=0)


def test_prompt_scores__upsamples_to_output_size() -> None:
    m, q = 3, 4
    out = prompt_scores(
        torch.full((m, q, 4, 4), BIG),
        torch.full((m, q), BIG),
        torch.full((m, 1), BIG),
        torch.full((m, 1, 4, 4), -BIG),
        size=(10, 6),
        confidence_threshold=0.5,
        query_chunk=3,
    )
    assert out.shape == (m, 10, 6)
    torch.testing.assert_close(out, torch.ones(m, 10, 6), atol=1e-6, rtol=0)


def test_class_scores__max_over_synonyms() -> None:
    s = torch.tensor([0.1, 0.5, 0.3, 0.2]).view(1, 4, 1, 1)
    out = class_scores(s, [0, 1, 1, 2], 3).flatten()
    torch.testing.assert_close(out, torch.tensor([0.1, 0.5, 0.2]))


def test_label_map__threshold_to_background() -> None:
    # K = 3 classes over 1x2 pixels.
    s = torch.tensor([[[[0.05, 0.3]], [[0.09, 0.2]], [[0.08, 0.35]]]])
    # pixel 0: best 0.09 (class 1) < 0.1 -> background 0; pixel 1: best 0.35 -> class 2.
    assert label_map(s, prob_thd=0.1).flatten().tolist() == [0, 2]
    s2 = torch.tensor([0.05, 0.4, 0.2]).view(1, 3, 1, 1)
    assert label_map(s2, prob_thd=0.1).item() == 1
    assert label_map(s2, prob_thd=0.5, background=2).item() == 2


def test_parse_vocabulary__synonyms_and_targets() -> None:
    v = parse_vocabulary("# comment\n# targets: road, building\n\nbackground\nroad\n building , roof \n")
    assert v.class_names == ("background", "road", "building")
    assert v.prompts == ("background", "road", "building", "roof")
    assert v.prompt_class == (0, 1, 2, 2)
    assert v.targets == (1, 2)


def test_parse_vocabulary__without_targets_every_class() -> None:
    assert parse_vocabulary("a\nb\n").targets == (0, 1)


@pytest.mark.parametrize(
    "text, match",
    [
        ("# targets: house\nbackground\nbuilding\n", "unknown classes"),
        ("background\nbuilding,,roof\n", "empty synonym"),
        ("a\na,b\n", "more than once"),
        ("# only comments\n", "no class lines"),
    ],
)
def test_parse_vocabulary__errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_vocabulary(text)


@pytest.mark.parametrize(
    "name, classes, targets",
    [
        ("whu_levir", 9, (8,)),
        ("dsifn", 4, (1,)),
        ("clcd", 9, (1, 2, 3, 5, 6, 7, 8)),
        ("second", 9, (1, 2, 3, 5, 6, 7, 8)),
        ("sc_scd", 7, (0, 1, 2, 3, 4, 5, 6)),
    ],
)
def test_read_vocabulary__paper_vocabularies(name: str, classes: int, targets: tuple[int, ...]) -> None:
    v = read_vocabulary(VOCAB_DIR / f"{name}.txt")
    assert len(v.class_names) == classes
    assert v.targets == targets


VOCAB = parse_vocabulary("# targets: building\nbackground\nbareland,barren\nwater,river\nbuilding,roof,house\n")


@pytest.fixture(scope="module")
def sam3() -> torch.nn.Module:
    return build_sam3_random("tiny", image_size=84, seed=0)


def _identifier(sam3: torch.nn.Module, decoder_batch: int, **kwargs: Any) -> SegEarthOV3:
    ids, mask = hashed_token_ids(VOCAB.prompts, vocab_size=sam3.config.text_config.vocab_size)
    return SegEarthOV3(
        sam3,
        input_ids=ids,
        attention_mask=mask,
        prompt_class=VOCAB.prompt_class,
        num_classes=len(VOCAB.class_names),
        input_size=84,
        decoder_batch=decoder_batch,
        **kwargs,
    )


class _Counter:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_segearth_ov3__end_to_end_labels(sam3: torch.nn.Module) -> None:
    ident = _identifier(sam3, decoder_batch=5)
    images = torch.rand(3, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    labels = ident(images)
    assert labels.shape == (3, 40, 48) and labels.dtype == torch.int64
    assert 0 <= int(labels.min()) and int(labels.max()) < 4
    torch.testing.assert_close(ident(images), labels)


def test_segearth_ov3__one_vision_pass_cached_text_batched_decoding(
    sam3: torch.nn.Module, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ident = _identifier(sam3, decoder_batch=5)
    vision = _Counter(sam3.get_vision_features)
    text = _Counter(sam3.get_text_features)
    decoder = _Counter(sam3.forward)
    geometry = _Counter(sam3.geometry_encoder.forward)
    monkeypatch.setattr(sam3, "get_vision_features", vision)
    monkeypatch.setattr(sam3, "get_text_features", text)
    monkeypatch.setattr(sam3, "forward", decoder)
    monkeypatch.setattr(sam3.geometry_encoder, "forward", geometry)
    images = torch.rand(3, 3, 32, 32)
    ident(images)
    ident(images)
    assert vision.calls == 2  # one pass per batch of images, for every prompt
    assert geometry.calls == 2  # the CLS token depends on the image alone: once per batch of images
    assert text.calls == 1  # text features once per vocabulary
    pairs = 3 * len(VOCAB.prompts)  # 24 pairs in batches of 5 -> 5 calls per forward
    assert decoder.calls == 2 * -(-pairs // 5)


def test_segearth_ov3__batched_decoding_equals_one_pair_at_a_time(sam3: torch.nn.Module) -> None:
    images = torch.rand(2, 3, 36, 36, generator=torch.Generator().manual_seed(1))
    batched = _identifier(sam3, decoder_batch=64).class_scores(images)
    single = _identifier(sam3, decoder_batch=1).class_scores(images)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def _full_forward_scores(sam3: torch.nn.Module, ident: SegEarthOV3, image: torch.Tensor,
                         box: list[float] | None) -> torch.Tensor:
    """``Sam3Model.forward`` on pixels and token ids, every prompt at once; with ``box``, one
    padding box labelled -10 per prompt (``transformers``' "not a box"), fused like ours."""
    p = ident.num_prompts
    boxes = {} if box is None else {
        "input_boxes": torch.tensor(box).view(1, 1, 4).expand(p, 1, 4),
        "input_boxes_labels": torch.full((p, 1), -10),
    }
    with torch.no_grad():
        full = sam3(pixel_values=ident.preprocess(image).expand(p, -1, -1, -1), input_ids=ident.input_ids,
                    attention_mask=ident.attention_mask, **boxes)
    return prompt_scores(full.pred_masks, full.pred_logits, full.presence_logits, full.semantic_seg,
                         size=image.shape[-2:], confidence_threshold=0.0)


@pytest.mark.parametrize("box", [[0.5, 0.5, 1.0, 1.0], [0.1, 0.85, 0.05, 0.3]])
def test_segearth_ov3__equals_padding_box_forward_wherever_the_box(sam3: torch.nn.Module, box: list[float]) -> None:
    """The official 33-token prompt, as ``Sam3Model`` builds it from one masked box: the box's
    coordinates change nothing, and our once-per-image CLS token gives the same scores."""
    ident = _identifier(sam3, decoder_batch=8, confidence_threshold=0.0)
    image = torch.rand(1, 3, 84, 84, generator=torch.Generator().manual_seed(2))
    ours = ident.decode(ident.vision_features(image), size=(84, 84))[0]  # [P, 84, 84]
    torch.testing.assert_close(ours, _full_forward_scores(sam3, ident, image, box), atol=1e-5, rtol=1e-5)


def test_segearth_ov3__without_geometry_equals_text_only_forward(sam3: torch.nn.Module) -> None:
    """``geometry_prompt=False`` is ``transformers``' text-only prompt, and differs from ours."""
    image = torch.rand(1, 3, 84, 84, generator=torch.Generator().manual_seed(2))
    text_only = _identifier(sam3, decoder_batch=8, confidence_threshold=0.0, geometry_prompt=False)
    got = text_only.decode(text_only.vision_features(image), size=(84, 84))[0]
    torch.testing.assert_close(got, _full_forward_scores(sam3, text_only, image, None), atol=1e-5, rtol=1e-5)
    official = _identifier(sam3, decoder_batch=8, confidence_threshold=0.0)
    ours = official.decode(official.vision_features(image), size=(84, 84))[0]
    assert float((ours - got).abs().max()) > 1e-4  # the CLS token moves every head's output


def _hand_built_33_token_scores(sam3: Any, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                                size: tuple[int, int]) -> torch.Tensor:
    """SAM 3's detector on the official prompt, assembled here from its parts.

    The geometry encoder's CLS embedding goes through its projection, norm, layers
    (self-attention over itself alone, cross-attention to the last used FPN level) and
    output norm; the P prompts are the 32 text tokens then that token; the DETR encoder,
    decoder, dot-product scoring and mask decoder run on them.
    """
    p = ids.shape[0]
    with torch.no_grad():
        vision = sam3.get_vision_features(pixel_values=pixels)  # one image
        fpn = [f.expand(p, -1, -1, -1) for f in vision.fpn_hidden_states[:-1]]
        pos = [q.expand(p, -1, -1, -1) for q in vision.fpn_position_encoding[:-1]]
        geo = sam3.geometry_encoder
        cls = geo.prompt_layer_norm(geo.final_proj(geo.cls_embed.weight[None]))  # [1, 1, D]
        feats = vision.fpn_hidden_states[-2].flatten(2).transpose(1, 2)  # [1, h*w, D]
        feats_pos = vision.fpn_position_encoding[-2].flatten(2).transpose(1, 2)
        for layer in geo.layers:
            cls = layer(prompt_feats=cls, vision_feats=feats, vision_pos_encoding=feats_pos, prompt_mask=None)
        cls = geo.output_layer_norm(cls)
        text = sam3.get_text_features(input_ids=ids, attention_mask=mask).pooler_output  # [P, 32, D]
        prompt = torch.cat([text, cls.expand(p, -1, -1)], dim=1)  # [P, 33, D]
        prompt_mask = torch.cat([mask.bool(), torch.ones(p, 1, dtype=torch.bool)], dim=1)
        assert prompt.shape[1] == 33
        enc = sam3.detr_encoder(vision_features=[fpn[-1]], text_features=prompt, vision_pos_embeds=[pos[-1]],
                                text_mask=prompt_mask)
        dec = sam3.detr_decoder(vision_features=enc.last_hidden_state, text_features=enc.text_features,
                                vision_pos_encoding=enc.pos_embeds_flattened, text_mask=prompt_mask,
                                spatial_shapes=enc.spatial_shapes)
        logits = sam3.dot_product_scoring(decoder_hidden_states=dec.intermediate_hidden_states,
                                          text_features=enc.text_features, text_mask=prompt_mask).squeeze(-1)[-1]
        heads = sam3.mask_decoder(decoder_queries=dec.intermediate_hidden_states[-1], backbone_features=fpn,
                                  encoder_hidden_states=enc.last_hidden_state, prompt_features=prompt,
                                  prompt_mask=prompt_mask)
    return prompt_scores(heads.pred_masks, logits, dec.presence_logits[-1], heads.semantic_seg, size=size,
                         confidence_threshold=0.0)


def test_segearth_ov3__equals_hand_built_33_token_prompt(sam3: torch.nn.Module) -> None:
    ident = _identifier(sam3, decoder_batch=5, confidence_threshold=0.0)
    images = torch.rand(2, 3, 60, 60, generator=torch.Generator().manual_seed(3))
    ours = ident.decode(ident.vision_features(images), size=(60, 60))  # [2, P, 60, 60]
    for i in range(2):
        expected = _hand_built_33_token_scores(sam3, ident.preprocess(images[i : i + 1]), ident.input_ids,
                                               ident.attention_mask, (60, 60))
        torch.testing.assert_close(ours[i], expected, atol=1e-5, rtol=1e-5)


def test_segearth_ov3__prompt_class_out_of_range(sam3: torch.nn.Module) -> None:
    ids, mask = hashed_token_ids(["a", "b"], vocab_size=256)
    with pytest.raises(ValueError, match="must lie in"):
        SegEarthOV3(sam3, input_ids=ids, attention_mask=mask, prompt_class=[0, 2], num_classes=2)
