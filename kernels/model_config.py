"""The ``model`` section of the config: which comparator and identifier run, and how.

Kept in ``kernels`` because the predictor is built from it; the YAML loading and
unknown-key checks live in :mod:`s2c_batch.pipeline.config`. Field types are
limited to what that loader converts: bool, int, float, str, ``Literal``,
``X | None`` and ``tuple[int, ...]`` / ``tuple[str, ...]``.

The defaults are the paper's setup (DINOv2 ViT-B/14 + CACH, SegEarth-OV3 with the
WHU/LEVIR vocabulary and ``building`` as target, the authors' evaluation
preprocessing). Checkpoints are local paths; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from s2c_batch.kernels.comparators.registry import (
    ComparatorName,
    ComparatorSpec,
    Family,
    When,
    comparator_names,
    comparator_spec,
)
from s2c_batch.kernels.errors import CheckpointError, ConfigError

#: What each checkpoint key must point at, for error messages.
CHECKPOINT_HINTS: dict[str, str] = {
    "backbone_checkpoint": "the original DINOv2 weights file, e.g. dinov2_vitb14_pretrain.pth",
    "cach_checkpoint": "the CACH head weights, e.g. the authors' exp/CK/best.pth or a .safetensors "
    "written by `s2c-batch train`",
    "sam3_checkpoint": "a local Hugging Face model directory of SAM 3 (a snapshot of facebook/sam3 "
    "with config.json, weights and tokenizer files)",
    "sam_checkpoint": "a local Hugging Face model directory of the original SAM (a snapshot of "
    "facebook/sam-vit-huge with config.json and weights)",
}

#: Checkpoint keys that name a directory (the others name a file).
DIRECTORY_CHECKPOINTS = ("sam3_checkpoint", "sam_checkpoint")

#: Parts of the model that ``model.compile`` can name.
COMPILE_PARTS = ("backbone", "vision", "detector")


@dataclass(frozen=True)
class ModelConfig:
    """Model settings (YAML section ``model``).

    Attributes:
        comparator: ``cach`` (Seg2Change change head on DINOv2 features), ``cva``
            (change vector analysis, the pointwise baseline and oracle), ``pca_kmeans``
            (Celik 2009), ``irmad`` (Nielsen 2007), ``dcva`` (deep CVA on the DINOv2
            taps, Saha et al. 2019), or a mask-level system of the paper's Table 1:
            ``anychange``, ``inst_ceg``, ``dynamicearth``, ``ucd_scm``; see docs/comparators.md.
        identifier: ``segearth_ov3`` (SAM 3 prompted with class names) or ``none``.
        threshold: a pixel is changed when its change probability is *above* it
            (``p > threshold``): at 0.5 this is the authors' argmax over the two
            change logits, where a tie is no change. Or ``otsu``: Otsu's threshold on
            the scene's histogram of ``change_prob`` (a pixel is changed from the
            level Otsu chooses up). ``None`` (the default): the comparator's own
            decision, Otsu for a comparator whose method is Otsu's (``ucd_scm``), else
            0.5; it is resolved when the config is made, so the attribute is never ``None``.
        standardize: ``scene`` standardises each date's bands by that date's
            whole-scene mean and standard deviation before a classical comparator
            (``cva``, ``pca_kmeans``, ``irmad``); ``none`` leaves them as read.
        device: ``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: tile pairs per forward pass.
        backbone: DINOv2 size under CACH: ``base`` (the paper), ``small``, ``large``
            or ``tiny`` (64 wide, tests only).
        backbone_checkpoint: local original-layout DINOv2 file (``dinov2_vitb14_pretrain.pth``).
        backbone_input_size: side of DINOv2's input; a multiple of 252 so that the
            token grid divides into EDQA's 9x9 windows at every level (504: 36x36 tokens).
        cach_checkpoint: local CACH weights (the authors' ``best.pth`` layout or ours).
        sam3_checkpoint: local Hugging Face SAM 3 directory (weights and tokenizer; the
            tracker head's weights too for class-agnostic mask proposals).
        sam_checkpoint: local Hugging Face directory of the original SAM (``SamModel``):
            the mask-level comparators' class-agnostic proposals come from it instead of
            SAM 3's tracker head (AnyChange's and DynamicEarth's releases used SAM ViT-H).
        sam3_size: SAM 3 architecture built when ``random_init`` gives no checkpoint:
            ``full`` (the released one) or ``tiny`` (tests).
        identifier_input_size: side of SAM 3's input (1008 for the released model).
        vocab: prompt list: a name in ``configs/vocab`` (``whu_levir``, ``dsifn``,
            ``clcd``, ``second``, ``sc_scd``) or a path to such a file.
        targets: target classes by name; empty = the vocabulary file's ``# targets:`` line.
        prob_thd: best class score below which a pixel is background (index 0).
        confidence_threshold: per-query score a SAM 3 query must exceed to count.
        normalize: DINOv2 input normalisation: ``none`` reproduces the authors'
            evaluation (ToTensor only); ``imagenet`` uses the training statistics.
        precision: the identifier's (SAM 3's) precision on CUDA: ``bf16`` (the authors'
            evaluation: fp32 weights, activations under bf16 autocast), ``fp16`` autocast,
            or ``fp32``. The CPU always runs fp32.
        comparator_precision: the comparator's (DINOv2 and CACH) precision on CUDA:
            ``fp32`` (the authors' evaluation: no autocast), or ``bf16`` / ``fp16``
            autocast (faster; flips change decisions near the threshold). The CPU
            always runs fp32.
        tf32: on CUDA, let float32 matmuls and cuDNN convolutions use TF32 (Ampere and
            later), as the authors' evaluation did (``import sam3`` switches it on);
            ``false`` keeps fp32 work in IEEE float32. Set for the duration of each
            ``predict`` call (torch's process-wide flags, restored afterwards).
        decoder_batch: (image, prompt) pairs per SAM 3 decoder call.
        compile: parts run through ``torch.compile``: ``backbone`` (DINOv2),
            ``vision`` (SAM 3's vision encoder), ``detector`` (SAM 3's DETR encoder,
            decoder and mask decoder). Compiled on first use, once per worker (tens of
            seconds per part on a GPU, less with a warm inductor cache): worth it for
            large scenes and ``s2c-batch batch``, not for small ones. Parts of models
            the config does not build are ignored. Needs Triton on CUDA, a C++
            compiler on the CPU.
        compile_mode: ``torch.compile`` mode: ``default``, ``reduce-overhead`` (CUDA
            graphs), ``max-autotune`` or ``max-autotune-no-cudagraphs``.
        random_init: build the architectures with seeded random weights where no
            checkpoint is given (tests and benchmarks only; the outputs mean nothing).
    """

    comparator: ComparatorName = "cach"
    identifier: Literal["segearth_ov3", "none"] = "segearth_ov3"
    threshold: float | Literal["otsu"] | None = None
    standardize: Literal["none", "scene"] = "none"
    device: str = "auto"
    batch_size: int = 8
    backbone: Literal["tiny", "small", "base", "large"] = "base"
    backbone_checkpoint: str | None = None
    backbone_input_size: int = 504
    cach_checkpoint: str | None = None
    sam3_checkpoint: str | None = None
    sam_checkpoint: str | None = None
    sam3_size: Literal["full", "tiny"] = "full"
    identifier_input_size: int = 1008
    vocab: str = "whu_levir"
    targets: tuple[str, ...] = ()
    prob_thd: float = 0.1
    confidence_threshold: float = 0.1
    normalize: Literal["none", "imagenet"] = "none"
    precision: Literal["bf16", "fp16", "fp32"] = "bf16"
    comparator_precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    tf32: bool = True
    decoder_batch: int = 32
    compile: tuple[str, ...] = ()
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    random_init: bool = False

    def __post_init__(self) -> None:
        spec = self.spec
        threshold = self.threshold
        if threshold is None:  # the comparator's own decision
            threshold = "otsu" if spec.needs.otsu else 0.5
            object.__setattr__(self, "threshold", threshold)
        if threshold != "otsu" and not 0.0 <= threshold <= 1.0:
            raise ConfigError(
                f"model.threshold must be within [0, 1] or 'otsu', got {self.threshold!r}; "
                "set e.g. --set model.threshold=0.5"
            )
        if self.standardize == "scene" and spec.family is not Family.CLASSICAL:
            raise ConfigError(
                f"model.standardize=scene applies to the classical comparators "
                f"{list(comparator_names(Family.CLASSICAL))}; "
                f"{self.comparator} takes the images as its backbone expects: set model.standardize=none"
            )
        if spec.needs.identifier and self.identifier == "none":
            raise ConfigError(
                f"model.comparator={self.comparator} needs the identifier (its instances or class scores of the "
                "target classes), but model.identifier is 'none'; set --set model.identifier=segearth_ov3"
            )
        if spec.needs.otsu and self.threshold != "otsu":
            raise ConfigError(
                f"model.comparator={self.comparator} thresholds its distance with one Otsu over the whole scene, but "
                f"model.threshold is {self.threshold!r}; set --set model.threshold=otsu, or leave it unset (null)"
            )
        if self.batch_size < 1:
            raise ConfigError(f"model.batch_size must be >= 1, got {self.batch_size!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(
                f"model.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.backbone_input_size < 252 or self.backbone_input_size % 252:
            raise ConfigError(
                f"model.backbone_input_size must be a positive multiple of 252 (14 px patches, a token grid "
                f"divisible by 18 for the 9x9 windows of every CACH level), got {self.backbone_input_size!r}; "
                "use 504 (the paper) or 252"
            )
        if self.identifier_input_size < 14 or self.identifier_input_size % 14:
            raise ConfigError(
                f"model.identifier_input_size must be a positive multiple of 14, got "
                f"{self.identifier_input_size!r}; the released SAM 3 takes 1008"
            )
        for key in ("prob_thd", "confidence_threshold"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"model.{key} must be within [0, 1], got {value!r}")
        if self.decoder_batch < 1:
            raise ConfigError(f"model.decoder_batch must be >= 1, got {self.decoder_batch!r}")
        unknown = [p for p in self.compile if p not in COMPILE_PARTS]
        if unknown:
            raise ConfigError(
                f"model.compile names unknown parts {unknown!r}; choose from {list(COMPILE_PARTS)!r}, "
                "e.g. --set model.compile=[vision]"
            )
        if not self.vocab.strip():
            raise ConfigError("model.vocab must name a vocabulary, e.g. whu_levir")

    @property
    def spec(self) -> ComparatorSpec:
        """The comparator's entry in the registry (:mod:`s2c_batch.kernels.comparators.registry`)."""
        return comparator_spec(self.comparator)

    @property
    def uses_torch(self) -> bool:
        """Whether a torch model runs: everything but a classical comparator without identifier."""
        return self.spec.uses_torch(self.identifier != "none")

    @property
    def fitted(self) -> bool:
        """Whether the comparator is fitted to each scene (every classical one but the oracle CVA, and dcva)."""
        return self.spec.fitted(standardize=self.standardize == "scene", otsu=self.otsu)

    @property
    def otsu(self) -> bool:
        """Whether the mask threshold is chosen by Otsu's method over the scene."""
        return self.threshold == "otsu"

    def numeric_threshold(self, what: str) -> float:
        """The threshold as a number, for uses that cannot take ``otsu``.

        Raises:
            ConfigError: ``model.threshold`` is ``otsu``; ``what`` names the use.
        """
        if self.threshold == "otsu" or self.threshold is None:
            raise ConfigError(f"{what} needs a numeric model.threshold, not 'otsu'; set e.g. --set model.threshold=0.5")
        return self.threshold

    @property
    def mask_level(self) -> bool:
        """Whether the comparator is one of the paper's mask-level systems."""
        return self.spec.family is Family.MASK_LEVEL

    def required_checkpoints(self) -> tuple[str, ...]:
        """The checkpoint keys this configuration loads (e.g. ``backbone_checkpoint``).

        Options of other sections may add some (``anychange.features: dinov2`` DINOv2's):
        :func:`s2c_batch.pipeline.config.required_checkpoints` has them all.
        """
        return self.spec.checkpoints(identifier=self.identifier == "segearth_ov3",
                                     sam_checkpoint=self.sam_checkpoint is not None)

    def check_checkpoints(self, keys: Sequence[str] | None = None) -> None:
        """Fail early when a checkpoint this configuration needs is not there.

        A key set to a path must name an existing file (a directory for
        ``sam3_checkpoint``); a key left null is only allowed with ``random_init``.

        Args:
            keys: the keys to check; ``None``: :meth:`required_checkpoints`.

        Raises:
            CheckpointError: naming the key, the path and what it must hold.
        """
        for key in self.required_checkpoints() if keys is None else keys:
            path = getattr(self, key)
            hint = CHECKPOINT_HINTS[key]
            use = self.spec.checkpoint_use(key)
            why = f" ({use})" if use else ""
            if path is None:
                if self.random_init:
                    continue
                raise CheckpointError(
                    f"model.{key} is not set{why}; it must name {hint}. Set it in the config or with "
                    f"--set model.{key}=PATH (weights are never downloaded){self._without_identifier(key)}"
                )
            want_dir = key in DIRECTORY_CHECKPOINTS
            exists = Path(path).is_dir() if want_dir else Path(path).is_file()
            if not exists:
                raise CheckpointError(
                    f"model.{key} = {path!r} does not exist or is not a {'directory' if want_dir else 'file'}; "
                    f"it must name {hint}"
                )

    def _without_identifier(self, key: str) -> str:
        """Advice for a missing SAM 3 that only the identifier needs: the comparator runs without it."""
        needs = self.spec.needs
        if key != "sam3_checkpoint" or self.identifier != "segearth_ov3" or needs.identifier:
            return ""
        if needs.proposals is not When.NEVER:  # its proposals come from SAM 3 without the identifier too
            return ""
        return (f"; or, without the identifier, score {self.comparator}'s change of every class: "
                f"--set model.identifier=none")


def comparator_settings(comparator: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``model`` settings of one of several comparators run side by side (``compare``, ``eval --comparators``).

    ``settings`` (as read, before validation) with ``comparator`` set, and the settings
    that apply to some comparators only kept where they apply: ``standardize`` to the
    classical comparators (the others take the images as their backbone expects), a
    numeric ``threshold`` to those that take one (a method whose threshold is Otsu's,
    ``ucd_scm``, gets ``otsu``).

    Args:
        comparator: a ``model.comparator`` name.
        settings: the ``model`` section's keys and values.

    Raises:
        ConfigError: an unknown comparator.

    Example:
        >>> comparator_settings("cach", {"standardize": "scene", "threshold": 0.4})
        {'standardize': 'none', 'threshold': 0.4, 'comparator': 'cach'}
    """
    spec = comparator_spec(comparator)
    out = {**settings, "comparator": comparator}
    if spec.family is not Family.CLASSICAL:
        out["standardize"] = "none"
    if spec.needs.otsu:
        out["threshold"] = "otsu"
    return out


def check_side_by_side(settings: Mapping[str, Any], comparators: Sequence[str]) -> None:
    """Check that a setting meant for some comparators applies to one of those run side by side.

    Args:
        settings: the ``model`` section's keys and values (as read).
        comparators: the comparators run with them.

    Raises:
        ConfigError: ``standardize: scene`` with no classical comparator among them.
    """
    classical = comparator_names(Family.CLASSICAL)
    if settings.get("standardize") == "scene" and not any(comparator_spec(n).family is Family.CLASSICAL
                                                          for n in comparators):
        raise ConfigError(
            f"model.standardize=scene applies to the classical comparators {list(classical)}, and none of "
            f"{list(comparators)} is one: add one of them or drop --set model.standardize=scene"
        )
