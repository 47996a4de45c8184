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
  and the change probability is ``softmax(logits)[1]``, in float32
  (:func:`~s2c_batch.kernels.comparators.learned.cach.change_probability`).
- SegEarth-OV3: tiles resized to ``identifier_input_size`` (1008), mean = std = 0.5.
- Precision per part, as the authors evaluated: on CUDA the comparator runs in
  float32 (``comparator_precision: fp32``) and SAM 3 under bf16 autocast on fp32
  weights (``precision: bf16``); with ``tf32`` float32 matmuls and convolutions
  may use TF32, as ``import sam3`` allowed in their runs. The CPU runs fp32
  throughout. ``batch_size`` pairs per pass; the results stay on the device until
  one copy to the host per call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.classical.cva import CVA
from s2c_batch.kernels.comparators.learned.cach import change_probability
from s2c_batch.kernels.comparators.learned.dcva import DCVA, tap_differences
from s2c_batch.kernels.comparators.registry import Family, Fit, When, comparator_names
from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.predictors.base import DevicePredictor
from s2c_batch.kernels.predictors.device import resolve_device
from s2c_batch.kernels.predictors.host import ComparatorTilePredictor
from s2c_batch.kernels.predictors.models import (
    RANDOM_INIT_SEED,
    build_cach_head,
    configured_identifier,
    load_backbone,
    seeded,
)
from s2c_batch.kernels.predictors.parts import PredictorParts, PredictorSettings
from s2c_batch.kernels.predictors.preprocess import backbone_input

#: What a :class:`ChangePredictor` takes from a run: a fitted classical comparator or DCVA's fitted selection.
TileComparator = FittedComparator | DCVA


class ChangePredictor(DevicePredictor):
    """Seg2Change on tile pairs: a learned or classical comparator plus an optional identifier.

    The comparator's registry entry says what runs: a learned one (CACH, DCVA) on the
    device, batch by batch; a classical one on the host, tile by tile, beside the
    identifier on the device.
    """

    def __init__(self, parts: PredictorParts, settings: PredictorSettings | None = None, *,
                 device: torch.device | str = "cpu", comparator: str = "cach") -> None:
        """Place the models on a device.

        Args:
            parts: the models: ``cach`` needs ``backbone`` and ``cach``, ``dcva`` the
                ``backbone`` (and a fit: :meth:`with_comparator`), a classical one
                neither (fitted ones through :meth:`with_comparator`); ``identifier`` optional.
            settings: precision, TF32, batch size, compiling (``None``: the defaults).
            device: torch device.
            comparator: a learned or classical ``model.comparator`` name.

        Raises:
            ValueError: a model the comparator needs is missing.
        """
        super().__init__(parts, settings or PredictorSettings(), device=device, comparator=comparator)
        if self.spec.needs.cach and (parts.backbone is None or parts.cach is None):
            raise ValueError(f"the {comparator} comparator needs a backbone and a CACH head")
        if self.spec.needs.dinov2 is When.ALWAYS and parts.backbone is None:
            raise ValueError(f"the {comparator} comparator needs a backbone")
        self.cach = parts.cach.to(self.device).eval() if parts.cach is not None else None
        if self.cach is not None:
            self.cach.requires_grad_(False)
        #: The fitted comparator of a run (a classical one, or DCVA's selection); see :meth:`with_comparator`.
        self.fitted: TileComparator | None = None

    def with_comparator(self, fitted: TileComparator) -> ChangePredictor:
        """This predictor (sharing its models) with a run's fitted comparator.

        Args:
            fitted: a fitted classical comparator (used on each tile on the host) or
                the fitted DCVA selection.
        """
        view = copy.copy(self)
        view.fitted = fitted
        return view

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
        needs = cfg.spec.needs
        with seeded(RANDOM_INIT_SEED):
            backbone = load_backbone(cfg) if needs.dinov2 is When.ALWAYS else None
            cach = build_cach_head(cfg) if needs.cach else None
            identifier, vocab = configured_identifier(cfg)
        parts = PredictorParts.with_vocabulary(vocab, backbone=backbone, cach=cach, identifier=identifier)
        return cls(parts, PredictorSettings.of(cfg), device=device, comparator=cfg.comparator)

    def change_probability(self, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        """CACH change probability of tile pairs on the device.

        Args:
            t1: ``[n, 3, H, W]`` in [0, 1].
            t2: ``[n, 3, H, W]`` in [0, 1].

        Returns:
            float32 ``[n, H, W]``.

        Raises:
            ValueError: the predictor has no CACH head.
        """
        if self.backbone is None or self.cach is None:
            raise ValueError("the CACH change probability needs the backbone and the head (model.comparator: cach)")
        x = backbone_input(torch.cat([t1, t2]), self.backbone.img_size, self._stats)
        with self.autocast(self.comparator_precision):
            taps = self.backbone(x)
            logits = self.cach([f[: len(t1)] for f in taps], [f[len(t1) :] for f in taps])
        return change_probability(logits, t1.shape[-2:])

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
        if self.spec.needs_rgb(self.identifier is not None) and a.shape[1] != 3:
            rgb = " and ".join(comparator_names(Family.LEARNED))
            raise ConfigError(
                f"the {rgb} comparators and the segearth_ov3 identifier take 3 bands (RGB), but the tiles "
                f"have {a.shape[1]}; set input.bands to three bands, e.g. [1, 2, 3]"
            )
        if self.spec.fit is Fit.TILES and not isinstance(self.fitted, DCVA):
            raise ValueError(f"the {self.comparator} comparator predicts with its fit: call with_comparator(fitted "
                             "DCVA) first")
        n = a.shape[0]
        if n == 0:
            empty = np.zeros((0, *a.shape[2:]), np.float32)
            cls = np.zeros(empty.shape, np.uint8) if self.identifier is not None else None
            return Prediction(prob=empty, class_t1=cls, class_t2=cls)
        t1 = self._to_device(a, scale)
        t2 = self._to_device(b, scale)
        on_device = self.spec.family is Family.LEARNED
        probs: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        with self.float32_mode():
            for s in range(0, n, self.batch_size):
                x1, x2 = t1[s : s + self.batch_size], t2[s : s + self.batch_size]
                if on_device and self.spec.needs.cach:
                    probs.append(self.change_probability(x1, x2))
                elif on_device and isinstance(self.fitted, DCVA):
                    probs.append(self.fitted.probability(self.tap_differences(x1, x2, self.fitted.layers),
                                                         x1.shape[-2:]))
                if self.identifier is not None:
                    labels.append(self.classes(torch.cat([x1, x2])))
        if on_device:
            prob = torch.cat(probs).cpu().numpy()
        else:  # a classical comparator, on the host, tile by tile
            comparator = CVA() if self.fitted is None or isinstance(self.fitted, DCVA) else self.fitted
            prob = ComparatorTilePredictor(comparator).predict(t1.cpu().numpy(), t2.cpu().numpy()).prob
        if not labels:
            return Prediction(prob=prob)
        both = [lab.split(len(lab) // 2) for lab in labels]
        class_t1 = torch.cat([x for x, _ in both]).cpu().numpy()
        class_t2 = torch.cat([y for _, y in both]).cpu().numpy()
        return Prediction(prob=prob, class_t1=class_t1, class_t2=class_t2)
