"""What a tile predictor is made of: its models (:class:`PredictorParts`) and how it runs them.

:class:`PredictorSettings` holds the ``model`` keys that say how: precision, TF32, batch size, compiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import DinoV2Taps
from s2c_batch.kernels.models.cach import CACH
from s2c_batch.kernels.models.identifier import SegEarthOV3, Vocabulary


@dataclass(frozen=True)
class PredictorParts:
    """The models a tile predictor places on its device, and the identifier's vocabulary.

    Attributes:
        backbone: frozen DINOv2 taps (CACH, DCVA, DynamicEarth), or ``None``.
        cach: the CACH change head, or ``None``.
        identifier: SegEarth-OV3, or ``None`` for change alone.
        class_names: the identifier's class names (index = class value).
        target_classes: indexes of the target classes.
    """

    backbone: DinoV2Taps | None = None
    cach: CACH | None = None
    identifier: SegEarthOV3 | None = None
    class_names: tuple[str, ...] = ()
    target_classes: tuple[int, ...] = ()

    @classmethod
    def with_vocabulary(cls, vocab: Vocabulary | None, *, backbone: DinoV2Taps | None = None,
                        cach: CACH | None = None, identifier: SegEarthOV3 | None = None) -> PredictorParts:
        """The parts with the class names and targets of ``vocab`` (none without an identifier)."""
        return cls(backbone=backbone, cach=cach, identifier=identifier,
                   class_names=vocab.class_names if vocab else (),
                   target_classes=tuple(int(t) for t in vocab.targets) if vocab else ())


@dataclass(frozen=True)
class PredictorSettings:
    """How a tile predictor runs its models (the ``model`` keys of the same names).

    Attributes:
        normalize: DINOv2's input: ``none`` (the authors' evaluation) or ``imagenet``.
        precision: the identifier's on CUDA: ``bf16``, ``fp16`` (autocast) or ``fp32``.
        comparator_precision: DINOv2's and CACH's on CUDA: ``fp32``, ``bf16`` or ``fp16``.
        tf32: allow TF32 for float32 matmuls and convolutions on CUDA during ``predict``
            (restored afterwards).
        batch_size: tile pairs per forward pass (at least 1).
        compile: parts to run through ``torch.compile`` (``backbone``, ``vision``,
            ``detector``; see ``ModelConfig.compile``). Compiled in place, on first use.
        compile_mode: the ``torch.compile`` mode.
    """

    normalize: Literal["none", "imagenet"] = "none"
    precision: str = "bf16"
    comparator_precision: str = "fp32"
    tf32: bool = True
    batch_size: int = 8
    compile: tuple[str, ...] = ()
    compile_mode: str = "default"

    @classmethod
    def of(cls, cfg: ModelConfig) -> PredictorSettings:
        """The settings a model config gives."""
        return cls(normalize=cfg.normalize, precision=cfg.precision, comparator_precision=cfg.comparator_precision,
                   tf32=cfg.tf32, batch_size=cfg.batch_size, compile=tuple(cfg.compile),
                   compile_mode=cfg.compile_mode)
