"""What the tile predictors on a device share: the models placed there, precision, TF32, compiling, copying in.

:class:`~s2c_batch.kernels.predictors.tile.ChangePredictor` (CACH, DCVA, the classical
comparators beside the identifier) and
:class:`~s2c_batch.kernels.predictors.masks.MaskChangePredictor` (the mask-level systems)
build on :class:`DevicePredictor`; each adds its own ``predict`` and the comparator it
takes from a run (``with_comparator``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from s2c_batch.kernels.comparators.registry import ComparatorSpec, comparator_spec
from s2c_batch.kernels.predictors.device import autocast, tf32_allowed
from s2c_batch.kernels.predictors.parts import PredictorParts, PredictorSettings
from s2c_batch.kernels.predictors.preprocess import imagenet_stats


class DevicePredictor:
    """The models of a comparator and an optional identifier, placed on one device.

    Attributes:
        device: where the models run.
        spec: the comparator's registry entry (what it needs; how it runs).
        backbone: DINOv2's taps, or ``None``.
        identifier: SegEarth-OV3, or ``None``.
        class_names: the identifier's class names (index = class value).
        target_classes: indexes of the target classes.
        compiled: the parts run through ``torch.compile``.
    """

    def __init__(self, parts: PredictorParts, settings: PredictorSettings, *, device: torch.device | str,
                 comparator: str) -> None:
        """Place the models on ``device``.

        Args:
            parts: the models and the vocabulary.
            settings: precision, TF32, batch size, compiling.
            device: torch device.
            comparator: the ``model.comparator`` name.

        Raises:
            ConfigError: an unknown comparator.
        """
        self.device = torch.device(device)
        self.spec: ComparatorSpec = comparator_spec(comparator)
        self.backbone = parts.backbone.to(self.device).eval() if parts.backbone is not None else None
        self.identifier = parts.identifier.to(self.device).eval() if parts.identifier is not None else None
        self.class_names = tuple(parts.class_names)
        self.target_classes = tuple(int(t) for t in parts.target_classes)
        self.precision = settings.precision
        self.comparator_precision = settings.comparator_precision
        self.tf32 = settings.tf32
        self.batch_size = max(1, int(settings.batch_size))
        self._stats = imagenet_stats(self.device) if settings.normalize == "imagenet" else None  # ``normalize``
        self.compiled = tuple(self._compile(settings.compile, settings.compile_mode))

    @property
    def comparator(self) -> str:
        """The ``model.comparator`` name."""
        return self.spec.name

    def _compile(self, parts: Sequence[str], mode: str) -> list[str]:
        """Compile the modules of each part in place (module names and weights unchanged)."""
        done = []
        for part in parts:
            targets: list[torch.nn.Module]
            if part == "backbone":
                targets = [self.backbone] if self.backbone is not None else []
            elif part in ("vision", "detector"):
                targets = self.identifier.compile_targets(part) if self.identifier is not None else []
            else:
                raise ValueError(f"unknown compile part {part!r}; expected backbone, vision or detector")
            for module in targets:
                module.compile(mode=mode)
            if targets:
                done.append(part)
        return done

    @property
    def device_async(self) -> bool:
        """True on CUDA: ``predict`` mostly waits for the GPU, so the host can blend meanwhile."""
        return self.device.type == "cuda"

    def autocast(self, precision: str) -> contextlib.AbstractContextManager[object]:
        """Autocast for a part of the given precision: on CUDA for ``bf16`` / ``fp16``, else none."""
        return autocast(self.device, precision)

    def float32_mode(self) -> contextlib.AbstractContextManager[object]:
        """TF32 for float32 work on CUDA as ``tf32`` says, for the duration of the block."""
        if self.device.type == "cuda":
            return tf32_allowed(self.tf32)
        return contextlib.nullcontext()

    def classes(self, images: torch.Tensor) -> torch.Tensor:
        """Identifier labels of images on the device.

        Args:
            images: ``[n, 3, H, W]`` in [0, 1].

        Returns:
            uint8 ``[n, H, W]``.

        Raises:
            ValueError: the predictor has no identifier.
        """
        if self.identifier is None:
            raise ValueError("class maps need the identifier (model.identifier: segearth_ov3)")
        with self.autocast(self.precision):
            return self.identifier(images).to(torch.uint8)

    def _to_device(self, array: np.ndarray, scale: float | None = None) -> torch.Tensor:
        """Copy tiles to the device as they are, then make float32 in [0, 1] there."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        tensor = tensor.float()
        if scale is not None:
            tensor = (tensor / scale).clamp_(0.0, 1.0)
        return torch.nan_to_num(tensor, nan=0.0, posinf=0.0, neginf=0.0)
