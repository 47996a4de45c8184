"""SegEarth-OV3: SAM 3 prompted with class names labels every pixel of an image.

One vision pass per image is reused by every prompt; the text features of the
vocabulary are computed once and cached; the (image, prompt) pairs are decoded
in batches of ``decoder_batch``; the outputs are fused by
:mod:`s2c_batch.kernels.models.identifier.fusion`.

The prompt is the official SAM 3's: the 32 text tokens plus the geometry
encoder's CLS token. The official ``Sam3Processor`` installs an empty geometric
prompt with every text prompt, and its geometry encoder appends a learned CLS
token that cross-attends to the image, so the DETR encoder, decoder and heads see
33 tokens. ``transformers.Sam3Model`` runs its geometry encoder only when boxes
are given; :meth:`SegEarthOV3.geometry_tokens` runs it on an empty box set. With
no boxes that token depends on the image alone, so it is computed once per image
and appended to the text tokens of each of the image's prompts
(docs/fidelity.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from s2c_batch.kernels.models.identifier.fusion import class_scores, label_map, prompt_scores

if TYPE_CHECKING:
    from transformers import Sam3Model
    from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

#: SAM 3's input normalisation: mean = std = 0.5 (to [-1, 1]).
SAM3_MEAN = 0.5
SAM3_STD = 0.5


@dataclass(frozen=True)
class Instances:
    """The instance masks the identifier found in one image.

    Attributes:
        masks: bool ``[n, H, W]``.
        scores: float32 ``[n]``: the query score ``sigmoid(logit) * sigmoid(presence)``.
        prompts: int64 ``[n]``: the prompt each came from.
    """

    masks: torch.Tensor
    scores: torch.Tensor
    prompts: torch.Tensor

    @classmethod
    def of(cls, parts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], size: Sequence[int],
           device: torch.device) -> Instances:
        """The instances of several prompts together (none: an empty set over ``size``)."""
        if not parts:
            return cls(torch.zeros((0, *size), dtype=torch.bool, device=device),
                       torch.zeros(0, dtype=torch.float32, device=device),
                       torch.zeros(0, dtype=torch.long, device=device))
        return cls(*(torch.cat([p[k] for p in parts]) for k in range(3)))


class SegEarthOV3(nn.Module):
    """Open-vocabulary labelling with a ``transformers.Sam3Model``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __init__(
        self,
        sam3: Sam3Model,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_class: Sequence[int],
        num_classes: int,
        input_size: int = 1008,
        confidence_threshold: float = 0.1,
        prob_thd: float = 0.1,
        background: int = 0,
        decoder_batch: int = 32,
        geometry_prompt: bool = True,
    ) -> None:
        """Wrap a SAM 3 model with a fixed vocabulary.

        Args:
            sam3: a ``transformers.Sam3Model``.
            input_ids: int64 ``[P, L]`` token ids of the P prompts (tokenizer or
                :func:`~s2c_batch.kernels.models.identifier.tokens.hashed_token_ids`).
            attention_mask: int64 ``[P, L]``.
            prompt_class: class index of each prompt.
            num_classes: K classes.
            input_size: side of SAM 3's input (1008 for the released model).
            confidence_threshold: per-query score a query must exceed to count.
            prob_thd: best class score below which a pixel is background.
            background: background class index.
            decoder_batch: (image, prompt) pairs per decoder call.
            geometry_prompt: append the geometry encoder's CLS token to every
                prompt, as the official SAM 3 does (33 tokens); ``False`` gives
                ``transformers``' text-only prompt (32 tokens), for comparisons.
        """
        super().__init__()
        if input_ids.shape != attention_mask.shape or input_ids.shape[0] != len(prompt_class):
            raise ValueError(
                f"input_ids {tuple(input_ids.shape)}, attention_mask {tuple(attention_mask.shape)} and "
                f"{len(prompt_class)} prompt classes do not match"
            )
        if not prompt_class or min(prompt_class) < 0 or max(prompt_class) >= num_classes:
            raise ValueError(f"prompt classes {list(prompt_class)!r} must lie in [0, {num_classes})")
        self.sam3: Sam3Model = sam3
        self.sam3.requires_grad_(False)
        self.register_buffer("input_ids", input_ids.long(), persistent=False)
        self.register_buffer("attention_mask", attention_mask.long(), persistent=False)
        self.prompt_class = tuple(int(c) for c in prompt_class)
        self.num_classes = num_classes
        self.input_size = input_size
        self.confidence_threshold = confidence_threshold
        self.prob_thd = prob_thd
        self.background = background
        self.decoder_batch = max(1, decoder_batch)
        self.geometry_prompt = geometry_prompt
        self._text_cache: tuple[torch.device, torch.Tensor] | None = None

    @property
    def num_prompts(self) -> int:
        """Number of prompts P (all synonyms of all classes)."""
        return int(self.input_ids.shape[0])

    def compile_targets(self, part: str) -> list[nn.Module]:
        """The SAM 3 modules of a ``model.compile`` part.

        Args:
            part: ``vision`` (the vision encoder: one pass per image) or ``detector``
                (DETR encoder, DETR decoder layers and mask decoder: one pass per
                (image, prompt)).

        Returns:
            The modules, to be compiled in place; empty for other parts.
        """
        if part == "vision":
            return [self.sam3.vision_encoder]
        if part == "detector":
            # The decoder's layers, not the decoder: its box bias builds coordinates with
            # torch.arange over tensor-valued shapes, a graph break.
            return [self.sam3.detr_encoder, *self.sam3.detr_decoder.layers, self.sam3.mask_decoder]
        return []

    @torch.no_grad()
    def text_features(self) -> torch.Tensor:
        """Projected text features of the vocabulary, computed once per device.

        Returns:
            float32 ``[P, L, D]``.
        """
        device = self.input_ids.device
        if self._text_cache is None or self._text_cache[0] != device:
            with torch.autocast(device_type=device.type, enabled=False):
                out = self.sam3.get_text_features(input_ids=self.input_ids, attention_mask=self.attention_mask)
            self._text_cache = (device, out.pooler_output.float())
        return self._text_cache[1]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize to ``input_size`` (bilinear, antialiased) and normalise to [-1, 1].

        Args:
            images: ``[B, 3, H, W]`` in [0, 1].

        Returns:
            ``[B, 3, input_size, input_size]``.
        """
        size = (self.input_size, self.input_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (images - SAM3_MEAN) / SAM3_STD

    @torch.no_grad()
    def vision_features(self, images: torch.Tensor) -> Sam3VisionEncoderOutput:
        """One SAM 3 vision pass (``get_vision_features``) for a batch of images in [0, 1]."""
        return self.sam3.get_vision_features(pixel_values=self.preprocess(images))

    @torch.no_grad()
    def geometry_tokens(self, vision: Sam3VisionEncoderOutput) -> torch.Tensor:
        """The geometry encoder's output for an empty box set: its CLS token, one per image.

        The CLS embedding self-attends to itself alone and cross-attends to the
        image's last used FPN level (72x72 at 1008 px), so it depends on the image
        only and is shared by all of the image's prompts.

        Args:
            vision: the output of :meth:`vision_features` for B images.

        Returns:
            ``[B, 1, D]`` (D = the DETR width, 256 for the released model).
        """
        fpn = vision.fpn_hidden_states[:-1]  # the levels Sam3Model.forward uses
        pos = vision.fpn_position_encoding[:-1]
        b, device = fpn[0].shape[0], fpn[0].device
        out = self.sam3.geometry_encoder(
            box_embeddings=fpn[-1].new_zeros((b, 0, 4)),
            box_mask=torch.zeros((b, 0), dtype=torch.bool, device=device),
            box_labels=torch.zeros((b, 0), dtype=torch.long, device=device),
            img_feats=fpn,
            img_pos_embeds=pos,
        )
        return out.last_hidden_state

    def _prompts(
        self, geometry: torch.Tensor | None, image_index: torch.Tensor, prompt_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt tokens and mask of n (image, prompt) pairs.

        Args:
            geometry: :meth:`geometry_tokens` ``[B, 1, D]``, or None for text alone.
            image_index: int64 ``[n]``.
            prompt_index: int64 ``[n]``.

        Returns:
            ``([n, L(+1), D], [n, L(+1)])``: the text tokens then the CLS token
            (always valid), as the official ``Sam3Image._encode_prompt`` orders them.
        """
        text = self.text_features().index_select(0, prompt_index)
        mask = self.attention_mask.index_select(0, prompt_index)
        if geometry is None:
            return text, mask
        cls = geometry.index_select(0, image_index).to(text.dtype)
        return torch.cat([text, cls], dim=1), torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)

    @torch.no_grad()
    def decode(self, vision: Sam3VisionEncoderOutput, *, size: Sequence[int]) -> torch.Tensor:
        """Decode every (image, prompt) pair and fuse each into a score map.

        Args:
            vision: the output of :meth:`vision_features` for B images.
            size: output ``(H, W)``.

        Returns:
            float32 ``[B, P, H, W]``.
        """
        return self.decode_with_instances(vision, size=size)[0]

    @torch.no_grad()
    def decode_with_instances(
        self, vision: Sam3VisionEncoderOutput, *, size: Sequence[int], instance_prompts: Sequence[int] = ()
    ) -> tuple[torch.Tensor, list[Instances]]:
        """:meth:`decode`, and the instance masks of some prompts, as the official ``Sam3Processor`` keeps them.

        An instance is a query whose score ``sigmoid(logit) * sigmoid(presence)`` exceeds
        ``confidence_threshold``; its mask is its logits resized to ``size`` (bilinear),
        above 0 (``sigmoid > 0.5``). Seg2Change's evaluation kept those of the
        ``building`` prompt for its mask-level baselines.

        Args:
            vision: the output of :meth:`vision_features` for B images.
            size: output ``(H, W)``.
            instance_prompts: prompt indexes whose instances are kept.

        Returns:
            ``(scores float32 [B, P, H, W], instances of each image)``.
        """
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        fpn = vision.fpn_hidden_states
        pos = vision.fpn_position_encoding
        b, p = fpn[0].shape[0], self.num_prompts
        geometry = self.geometry_tokens(vision) if self.geometry_prompt else None
        out = torch.empty((b * p, *size), dtype=torch.float32, device=fpn[0].device)
        wanted = torch.tensor(sorted(set(instance_prompts)), dtype=torch.long, device=fpn[0].device)
        found: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(b)]
        for start in range(0, b * p, self.decoder_batch):
            pairs = torch.arange(start, min(start + self.decoder_batch, b * p), device=fpn[0].device)
            n = pairs.numel()
            image_index, prompt_index = pairs // p, pairs % p
            # The last level is sliced off by Sam3Model; position encodings depend on shape only.
            levels = tuple(f.index_select(0, image_index) for f in fpn[:-1]) + (fpn[-1],)
            positions = tuple(q[:1].expand(n, -1, -1, -1) for q in pos[:-1]) + (pos[-1],)
            embeds = type(vision)(fpn_hidden_states=levels, fpn_position_encoding=positions)
            # The CLS token travels with the text tokens: Sam3Model takes them as one prompt.
            tokens, mask = self._prompts(geometry, image_index, prompt_index)
            result = self.sam3(
                vision_embeds=embeds,
                text_embeds=BaseModelOutputWithPooling(pooler_output=tokens),
                attention_mask=mask,
            )
            out[start : start + n] = prompt_scores(
                result.pred_masks,
                result.pred_logits,
                result.presence_logits,
                result.semantic_seg,
                size=size,
                confidence_threshold=self.confidence_threshold,
            )
            for j in torch.nonzero(torch.isin(prompt_index, wanted)).flatten().tolist():
                found[int(image_index[j])].append(self._instances(result, j, int(prompt_index[j]), size))
        instances = [Instances.of(parts, size, fpn[0].device) for parts in found]
        return out.view(b, p, *size), instances

    def _instances(self, result: Any, j: int, prompt: int, size: Sequence[int]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The kept queries of pair ``j`` of a decoder call: masks ``[q, H, W]``, scores ``[q]``, prompts ``[q]``."""
        presence = torch.sigmoid(result.presence_logits[j].float().reshape(-1))[0]
        prob = torch.sigmoid(result.pred_logits[j].float()) * presence
        keep = torch.nonzero(prob > self.confidence_threshold).flatten()
        logits = result.pred_masks[j, keep].float()[None]  # [1, q, h, w]
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return logits[0] > 0, prob[keep], torch.full_like(keep, prompt)

    @torch.no_grad()
    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores of a batch of images.

        Args:
            images: ``[B, 3, H, W]`` in [0, 1].

        Returns:
            float32 ``[B, K, H, W]`` in [0, 1].
        """
        scores = self.decode(self.vision_features(images), size=images.shape[-2:])
        return class_scores(scores, self.prompt_class, self.num_classes)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Label every pixel.

        Args:
            images: ``[B, 3, H, W]`` in [0, 1].

        Returns:
            int64 ``[B, H, W]`` class indexes.
        """
        return label_map(self.class_scores(images), prob_thd=self.prob_thd, background=self.background)
