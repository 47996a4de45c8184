"""The tile predictor of Seg2Change: preprocessing, the models on a device, and the outputs.

``ChangePredictor.predict`` takes N co-registered tile pairs in [0, 1] and returns
the change probability per pixel and, with an identifier, the class of every pixel
at both dates. All preprocessing lives here:

- DINOv2 / CACH: each tile is resized to ``backbone_input_size`` (504; bilinear,
  antialiased like the authors' PIL resize) and, by default, *not* normalised:
  the authors evaluated with ``ToTensor()`` only although they trained with
  ImageNet statistics, and their published numbers come from that path
  (``model.normalize: imagenet`` switches to the training statistics). The CACH
  logits (at 504) are resized to the tile bilinearly with ``align_corners=True``
  and the change probability is ``softmax(logits)[1]``, in float32.
- SegEarth-OV3: tiles resized to ``identifier_input_size`` (1008), mean = std = 0.5.
- Precision per part, as the authors evaluated: on CUDA the comparator runs in
  float32 (``comparator_precision: fp32``) and SAM 3 under bf16 autocast on fp32
  weights (``precision: bf16``); with ``tf32`` float32 matmuls and convolutions
  may use TF32, as ``import sam3`` allowed in their runs. The CPU runs fp32
  throughout. ``batch_size`` pairs per pass; the results stay on the device until
  one copy to the host per call.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from s2c_batch.kernels.comparators.classical.cva import CVA
from s2c_batch.kernels.comparators.learned.dcva import DCVA, tap_differences
from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import DinoV2Taps
from s2c_batch.kernels.models.build import (
    RANDOM_INIT_SEED,
    build_cach_head,
    build_identifier,
    load_backbone,
    seeded,
)
from s2c_batch.kernels.models.cach import CACH
from s2c_batch.kernels.models.identifier import SegEarthOV3, Vocabulary, load_vocabulary
from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.predictors.device import autocast, resolve_device, tf32_allowed
from s2c_batch.kernels.predictors.host import ComparatorTilePredictor
from s2c_batch.kernels.predictors.preprocess import backbone_input, imagenet_stats


class ChangePredictor:
    """Seg2Change on tile pairs: a comparator (CACH or CVA) plus an optional identifier."""

    def __init__(
        self,
        *,
        device: torch.device | str = "cpu",
        comparator: str = "cach",
        backbone: DinoV2Taps | None = None,
        cach: CACH | None = None,
        identifier: SegEarthOV3 | None = None,
        class_names: Sequence[str] = (),
        target_classes: Sequence[int] = (),
        normalize: str = "none",
        precision: str = "bf16",
        comparator_precision: str = "fp32",
        tf32: bool = True,
        batch_size: int = 8,
        compile: Sequence[str] = (),
        compile_mode: str = "default",
    ) -> None:
        """Place the models on a device.

        Args:
            device: torch device.
            comparator: ``cach`` (needs ``backbone`` and ``cach``), ``dcva`` (needs
                ``backbone``, and a fit: :meth:`with_comparator`) or a classical one
                (``cva``, ``pca_kmeans``, ``irmad``; fitted ones through :meth:`with_comparator`).
            backbone: frozen DINOv2 taps.
            cach: the change head.
            identifier: SegEarth-OV3, or None for change alone.
            class_names: the identifier's class names (index = class value).
            target_classes: indexes of the target classes.
            normalize: ``none`` (the authors' evaluation) or ``imagenet``.
            precision: the identifier's: ``bf16``, ``fp16`` (CUDA autocast) or ``fp32``.
            comparator_precision: DINOv2's and CACH's: ``fp32``, ``bf16`` or ``fp16``.
            tf32: allow TF32 for float32 matmuls and convolutions on CUDA during
                :meth:`predict` (restored afterwards).
            batch_size: tile pairs per forward pass.
            compile: parts to run through ``torch.compile`` (``backbone``, ``vision``,
                ``detector``; see ``ModelConfig.compile``). Compiled in place, on first use.
            compile_mode: the ``torch.compile`` mode.
        """
        self.device = torch.device(device)
        if comparator == "cach" and (backbone is None or cach is None):
            raise ValueError("the cach comparator needs a backbone and a CACH head")
        if comparator == "dcva" and backbone is None:
            raise ValueError("the dcva comparator needs a backbone")
        self.comparator = comparator
        self.backbone = backbone.to(self.device).eval() if backbone is not None else None
        self.cach = cach.to(self.device).eval() if cach is not None else None
        self.identifier = identifier.to(self.device).eval() if identifier is not None else None
        if self.cach is not None:
            self.cach.requires_grad_(False)
        self.class_names = tuple(class_names)
        self.target_classes = tuple(int(t) for t in target_classes)
        self.precision = precision
        self.comparator_precision = comparator_precision
        self.tf32 = tf32
        self.batch_size = max(1, int(batch_size))
        self._stats = imagenet_stats(self.device) if normalize == "imagenet" else None  # ``normalize``
        self.compiled = tuple(self._compile(compile, compile_mode))
        #: The fitted comparator of a run (a classical one, or DCVA's selection); see :meth:`with_comparator`.
        self.fitted: Any = None

    def with_comparator(self, fitted: Any) -> ChangePredictor:
        """This predictor (sharing its models) with a run's fitted comparator.

        Args:
            fitted: a fitted classical comparator (used on each tile on the host) or
                the fitted DCVA selection.
        """
        view = copy.copy(self)
        view.fitted = fitted
        return view

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

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> ChangePredictor:
        """Build every model the config names, loading local checkpoints.

        Raises:
            CheckpointError: a checkpoint is missing or holds another architecture
                (the message names the config key).
            ConfigError: an unknown vocabulary or target class.
        """
        cfg.check_checkpoints()
        device = resolve_device(cfg.device)
        backbone = cach = identifier = None
        vocab: Vocabulary | None = None
        with seeded(RANDOM_INIT_SEED):
            if cfg.comparator in ("cach", "dcva"):
                backbone = load_backbone(cfg)
            if cfg.comparator == "cach":
                cach = build_cach_head(cfg)
            if cfg.identifier == "segearth_ov3":
                vocab = load_vocabulary(cfg.vocab)
                if cfg.targets:
                    vocab = vocab.with_targets(cfg.targets)
                identifier = build_identifier(cfg, vocab)
        return cls(
            device=device,
            comparator=cfg.comparator,
            backbone=backbone,
            cach=cach,
            identifier=identifier,
            class_names=vocab.class_names if vocab else (),
            target_classes=vocab.targets if vocab else (),
            normalize=cfg.normalize,
            precision=cfg.precision,
            comparator_precision=cfg.comparator_precision,
            tf32=cfg.tf32,
            batch_size=cfg.batch_size,
            compile=cfg.compile,
            compile_mode=cfg.compile_mode,
        )

    @property
    def device_async(self) -> bool:
        """True on CUDA: :meth:`predict` mostly waits for the GPU, so the host can blend meanwhile."""
        return self.device.type == "cuda"

    def autocast(self, precision: str) -> contextlib.AbstractContextManager[object]:
        """Autocast for a part of the given precision: on CUDA for ``bf16`` / ``fp16``, else none."""
        return autocast(self.device, precision)

    def float32_mode(self) -> contextlib.AbstractContextManager[object]:
        """TF32 for float32 work on CUDA as ``tf32`` says, for the duration of the block."""
        if self.device.type == "cuda":
            return tf32_allowed(self.tf32)
        return contextlib.nullcontext()

    def change_probability(self, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        """CACH change probability of tile pairs on the device.

        Args:
            t1: ``[n, 3, H, W]`` in [0, 1].
            t2: ``[n, 3, H, W]`` in [0, 1].

        Returns:
            float32 ``[n, H, W]``.
        """
        assert self.backbone is not None and self.cach is not None  # guaranteed by __init__
        x = backbone_input(torch.cat([t1, t2]), self.backbone.img_size, self._stats)
        with self.autocast(self.comparator_precision):
            taps = self.backbone(x)
            logits = self.cach([f[: len(t1)] for f in taps], [f[len(t1) :] for f in taps])
        logits = F.interpolate(logits.float(), size=t1.shape[-2:], mode="bilinear", align_corners=True)
        return torch.softmax(logits, dim=1)[:, 1]

    def tap_differences(self, t1: torch.Tensor, t2: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """DCVA's per-layer differences of the backbone taps, on the device.

        Args:
            t1: ``[n, 3, H, W]`` in [0, 1].
            t2: ``[n, 3, H, W]`` in [0, 1].
            layers: tap indexes (0-3).

        Returns:
            float32 ``[n, C, g, g]`` per layer.
        """
        if self.backbone is None:
            raise ValueError("tap differences need the backbone (model.comparator: dcva or cach)")
        x = backbone_input(torch.cat([t1, t2]), self.backbone.img_size, self._stats)
        with self.autocast(self.comparator_precision):
            taps = self.backbone(x)
        return tap_differences([f[: len(t1)] for f in taps], [f[len(t1) :] for f in taps], layers)

    @torch.no_grad()
    def dcva_differences(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray, layers: Sequence[int]) -> list[torch.Tensor]:
        """:meth:`tap_differences` of host tiles ``[n, 3, H, W]`` in [0, 1] (the DCVA fit)."""
        with self.float32_mode():
            return self.tap_differences(self._to_device(np.asarray(tiles_t1, np.float32)),
                                        self._to_device(np.asarray(tiles_t2, np.float32)), layers)

    def classes(self, images: torch.Tensor) -> torch.Tensor:
        """Identifier labels of images on the device.

        Args:
            images: ``[n, 3, H, W]`` in [0, 1].

        Returns:
            uint8 ``[n, H, W]``.
        """
        assert self.identifier is not None  # callers check
        with self.autocast(self.precision):
            return self.identifier(images).to(torch.uint8)

    @torch.no_grad()
    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray) -> Prediction:
        """Predict change (and classes) for N tile pairs.

        Args:
            tiles_t1: float32 ``[N, C, H, W]`` in [0, 1] (C = 3, RGB, unless the
                comparator is ``cva`` without identifier). Non-finite values count as 0.
            tiles_t2: float32 ``[N, C, H, W]`` in [0, 1].

        Returns:
            ``Prediction(prob float32 [N, H, W], class_t1, class_t2 uint8 [N, H, W] or None)``.

        Raises:
            ConfigError: the tiles do not have 3 bands although a model needs RGB.
        """
        a = np.asarray(tiles_t1, dtype=np.float32)
        b = np.asarray(tiles_t2, dtype=np.float32)
        return self._predict(a, b, scale=None)

    @torch.no_grad()
    def predict_raw(self, raw_t1: np.ndarray, raw_t2: np.ndarray, scale: float) -> Prediction:
        """Like :meth:`predict` on raw pixels, scaled on the device.

        uint8 tiles cross to the GPU at 1 byte per sample (pinned memory,
        asynchronous copy) and become ``clip(raw / scale, 0, 1)`` there.

        Args:
            raw_t1: ``[N, C, H, W]`` raw pixels (any integer or float dtype).
            raw_t2: ``[N, C, H, W]`` raw pixels.
            scale: raw value that maps to 1.0.
        """
        return self._predict(np.asarray(raw_t1), np.asarray(raw_t2), scale=scale)

    def _predict(self, a: np.ndarray, b: np.ndarray, *, scale: float | None) -> Prediction:
        if a.ndim != 4 or a.shape != b.shape:
            raise ValueError(f"tiles must be two [N, C, H, W] arrays of one shape, got {a.shape} and {b.shape}")
        needs_rgb = self.comparator in ("cach", "dcva") or self.identifier is not None
        if needs_rgb and a.shape[1] != 3:
            raise ConfigError(
                f"the cach and dcva comparators and the segearth_ov3 identifier take 3 bands (RGB), but the tiles "
                f"have {a.shape[1]}; set input.bands to three bands, e.g. [1, 2, 3]"
            )
        if self.comparator == "dcva" and not isinstance(self.fitted, DCVA):
            raise ValueError("the dcva comparator predicts with its fit: call with_comparator(fitted DCVA) first")
        n = a.shape[0]
        if n == 0:
            empty = np.zeros((0, *a.shape[2:]), np.float32)
            cls = np.zeros(empty.shape, np.uint8) if self.identifier is not None else None
            return Prediction(prob=empty, class_t1=cls, class_t2=cls)
        t1 = self._to_device(a, scale)
        t2 = self._to_device(b, scale)
        probs: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        with self.float32_mode():
            for s in range(0, n, self.batch_size):
                x1, x2 = t1[s : s + self.batch_size], t2[s : s + self.batch_size]
                if self.comparator == "cach":
                    probs.append(self.change_probability(x1, x2))
                elif self.comparator == "dcva":
                    probs.append(self.fitted.probability(self.tap_differences(x1, x2, self.fitted.layers),
                                                         x1.shape[-2:]))
                if self.identifier is not None:
                    labels.append(self.classes(torch.cat([x1, x2])))
        if self.comparator in ("cach", "dcva"):
            prob = torch.cat(probs).cpu().numpy()
        else:  # a classical comparator, on the host, tile by tile
            comparator = self.fitted if self.fitted is not None else CVA()
            prob = ComparatorTilePredictor(comparator).predict(t1.cpu().numpy(), t2.cpu().numpy()).prob
        if not labels:
            return Prediction(prob=prob)
        both = [lab.split(len(lab) // 2) for lab in labels]
        class_t1 = torch.cat([x for x, _ in both]).cpu().numpy()
        class_t2 = torch.cat([y for _, y in both]).cpu().numpy()
        return Prediction(prob=prob, class_t1=class_t1, class_t2=class_t2)

    def _to_device(self, array: np.ndarray, scale: float | None = None) -> torch.Tensor:
        """Copy tiles to the device as they are, then make float32 in [0, 1] there."""
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        tensor = tensor.float()
        if scale is not None:
            tensor = (tensor / scale).clamp_(0.0, 1.0)
        return torch.nan_to_num(tensor, nan=0.0, posinf=0.0, neginf=0.0)
