"""The models of a config: every model the ``model`` section names, from local checkpoints or seeded random weights.

As segment-anything's ``build_sam.py``, these builders stand apart from the models
(:mod:`s2c_batch.kernels.models`), which know nothing of the config. The predictors call
them once per worker; the training and feature code of the pipeline call
:func:`load_backbone` too. Under :func:`seeded` with :data:`RANDOM_INIT_SEED` every
randomly initialised model (``random_init``) has the same weights on every worker.
A checkpoint error names the config key that gave the file (:func:`for_key`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from s2c_batch.kernels.checkpoints import load_exact, read_state_dict
from s2c_batch.kernels.errors import CheckpointError, ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import BACKBONE_REGISTRY, DinoV2Taps
from s2c_batch.kernels.models.cach import CACH, build_cach, convert_official_state_dict
from s2c_batch.kernels.models.identifier import (
    SegEarthOV3,
    Vocabulary,
    build_sam3_random,
    hashed_token_ids,
    load_sam3_pretrained,
    load_vocabulary,
    tokenize_prompts,
)
from s2c_batch.kernels.models.proposals.sam import SamProposals, load_sam_pretrained
from s2c_batch.kernels.models.proposals.tracker import (
    TrackerProposals,
    build_tracker_random,
    load_tracker_pretrained,
)

#: Seed of every randomly initialised model (``random_init``): all workers build the same weights.
RANDOM_INIT_SEED = 0

#: A promptable segmenter for the proposals: SAM 3's tracker head or original SAM.
Proposer = TrackerProposals | SamProposals


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU generator seeded, restoring its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def for_key(key: str, path: str | None) -> Iterator[None]:
    """Prefix checkpoint errors with the config key that named the file.

    Args:
        key: the ``model`` key, e.g. ``backbone_checkpoint``.
        path: its value.

    Raises:
        CheckpointError: the error raised inside, as ``model.<key> = '<path>': <message>``.
    """
    try:
        yield
    except CheckpointError as exc:
        raise CheckpointError(f"model.{key} = {path!r}: {exc}") from exc


def load_backbone(cfg: ModelConfig) -> DinoV2Taps:
    """The DINOv2 taps ``cfg`` names: from ``backbone_checkpoint``, or the current RNG when unset.

    Under :func:`seeded` with :data:`RANDOM_INIT_SEED` this is the predictor's backbone.

    Raises:
        CheckpointError: the checkpoint does not fit, prefixed with ``model.backbone_checkpoint``.
    """
    with for_key("backbone_checkpoint", cfg.backbone_checkpoint):
        return BACKBONE_REGISTRY[cfg.backbone](cfg.backbone_checkpoint, img_size=cfg.backbone_input_size)


def build_cach_head(cfg: ModelConfig) -> CACH:
    """The CACH head for ``cfg.backbone``, with the weights of ``cach_checkpoint`` when set.

    Reads the authors' ``best.pth`` layout (converted) or ours.

    Raises:
        CheckpointError: the checkpoint holds another architecture, prefixed with ``model.cach_checkpoint``.
    """
    cach = build_cach(cfg.backbone)
    if cfg.cach_checkpoint is not None:
        with for_key("cach_checkpoint", cfg.cach_checkpoint):
            sd = read_state_dict(cfg.cach_checkpoint)
            if any(k.removeprefix("module.").startswith("adapterA.") for k in sd):
                sd = convert_official_state_dict(sd)
            load_exact(cach, sd, source=f"CACH checkpoint for backbone {cfg.backbone!r}")
    return cach


def _sam3_config(sam3: torch.nn.Module) -> Any:
    """The model's config, untyped: transformers types nested configs as ``dict | PreTrainedConfig | None``."""
    return sam3.config


def build_identifier(cfg: ModelConfig, vocab: Vocabulary) -> SegEarthOV3:
    """SegEarth-OV3 on SAM 3 from ``sam3_checkpoint`` (or random ``sam3_size`` weights), prompted with ``vocab``.

    Raises:
        CheckpointError: the directory holds no SAM 3 (prefixed with ``model.sam3_checkpoint``).
        ConfigError: more than 255 classes, or ``identifier_input_size`` differs from the checkpoint's.
    """
    if len(vocab.class_names) > 255:
        raise ConfigError(f"model.vocab has {len(vocab.class_names)} classes; class maps hold at most 255")
    if cfg.sam3_checkpoint is not None:
        with for_key("sam3_checkpoint", cfg.sam3_checkpoint):
            sam3, tokenizer = load_sam3_pretrained(cfg.sam3_checkpoint)
        native = _sam3_config(sam3).vision_config.backbone_config.image_size
        if cfg.identifier_input_size != native:
            raise ConfigError(
                f"model.identifier_input_size is {cfg.identifier_input_size} but the SAM 3 in "
                f"{cfg.sam3_checkpoint!r} takes {native}; set it to {native}"
            )
        input_ids, attention_mask = tokenize_prompts(tokenizer, vocab.prompts)
    else:
        sam3 = build_sam3_random(cfg.sam3_size, image_size=cfg.identifier_input_size, seed=RANDOM_INIT_SEED)
        vocab_size = _sam3_config(sam3).text_config.vocab_size
        input_ids, attention_mask = hashed_token_ids(vocab.prompts, vocab_size=vocab_size)
    return SegEarthOV3(
        sam3,
        input_ids=input_ids,
        attention_mask=attention_mask,
        prompt_class=vocab.prompt_class,
        num_classes=len(vocab.class_names),
        input_size=cfg.identifier_input_size,
        confidence_threshold=cfg.confidence_threshold,
        prob_thd=cfg.prob_thd,
        decoder_batch=cfg.decoder_batch,
    )


def configured_identifier(cfg: ModelConfig) -> tuple[SegEarthOV3 | None, Vocabulary | None]:
    """The identifier ``cfg`` names with its vocabulary (``model.targets`` applied), or ``(None, None)``.

    Raises:
        CheckpointError: as :func:`build_identifier`.
        ConfigError: an unknown vocabulary or target class, or as :func:`build_identifier`.
    """
    if cfg.identifier != "segearth_ov3":
        return None, None
    vocab = load_vocabulary(cfg.vocab)
    if cfg.targets:
        vocab = vocab.with_targets(cfg.targets)
    return build_identifier(cfg, vocab), vocab


def build_proposals(cfg: ModelConfig, identifier: SegEarthOV3 | None) -> Proposer:
    """The proposals' segmenter: original SAM from ``model.sam_checkpoint``, else SAM 3's tracker head.

    The tracker comes from ``sam3_checkpoint`` (random with ``random_init``); with an
    identifier it runs on the identifier's backbone (one ViT pass for both).

    Raises:
        CheckpointError: the directory holds no tracker weights (prefixed with the key).
        ConfigError: ``model.identifier_input_size`` differs from the tracker's input side.
    """
    if cfg.sam_checkpoint is not None:
        with for_key("sam_checkpoint", cfg.sam_checkpoint):
            return SamProposals(load_sam_pretrained(cfg.sam_checkpoint))
    if cfg.sam3_checkpoint is not None:
        with for_key("sam3_checkpoint", cfg.sam3_checkpoint):
            tracker = load_tracker_pretrained(cfg.sam3_checkpoint)
        config: Any = tracker.config  # nested configs are typed as dict | config | None
        native = config.prompt_encoder_config.image_size
        if native != cfg.identifier_input_size:
            raise ConfigError(f"model.identifier_input_size is {cfg.identifier_input_size} but SAM 3's tracker in "
                              f"{cfg.sam3_checkpoint!r} takes {native}; set it to {native}")
    else:
        tracker = build_tracker_random(cfg.sam3_size, image_size=cfg.identifier_input_size, seed=RANDOM_INIT_SEED)
    head = TrackerProposals(tracker, input_size=cfg.identifier_input_size)
    if identifier is not None:
        head.share_backbone(identifier.sam3.vision_encoder.backbone)
    return head
