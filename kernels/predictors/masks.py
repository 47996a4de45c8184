"""The tile predictor of the mask-level comparators (AnyChange, Inst-CEG, DynamicEarth, UCD-SCM).

Per batch of tile pairs, the models run once on both dates together, each on the device
in its precision, and only the parts the comparator reads:

- SegEarth-OV3 (``model.identifier: segearth_ov3``): one SAM 3 vision pass, the prompts
  decoded into class scores and the class maps (the ``class_t1`` / ``class_t2`` products,
  as for Seg2Change), and the instance masks of the first prompt of each target class
  (the class name: Seg2Change's evaluation kept those of ``building``);
- SAM 3's tracker head on the same backbone pass, prompted by the point grid (``amg``):
  class-agnostic proposals;
- DINOv2's last tap (final-norm tokens, ImageNet-normalised input as DynamicEarth's
  ``AutoImageProcessor``): latent matching features.

Then :meth:`~s2c_batch.kernels.comparators.mask_level.base.MaskComparator.decide` runs per
tile pair on a :class:`~s2c_batch.kernels.comparators.mask_level.evidence.TileEvidence`, with the
tile's core from the blend (:data:`owns_objects`), and returns the probability and the
blend priority of the objects the tile owns (:class:`~s2c_batch.kernels.prediction.Prediction`
``weight``).

Parts a run may not need are built on first use, once per worker: the tracker head for
DynamicEarth M-C-I, DINOv2 for AnyChange with ``anychange.features: dinov2``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from s2c_batch.kernels.comparators.mask_level.amg import generate_masks
from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.mask_level.evidence import TileEvidence
from s2c_batch.kernels.comparators.mask_level.masks import MaskSet
from s2c_batch.kernels.comparators.registry import Family, When, comparator_names, create_mask_comparator
from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import DinoV2Taps
from s2c_batch.kernels.models.identifier import class_scores, label_map
from s2c_batch.kernels.models.proposals.tracker import levels_of
from s2c_batch.kernels.prediction import Prediction
from s2c_batch.kernels.predictors.base import DevicePredictor
from s2c_batch.kernels.predictors.device import resolve_device
from s2c_batch.kernels.predictors.models import (
    RANDOM_INIT_SEED,
    Proposer,
    build_proposals,
    configured_identifier,
    load_backbone,
    seeded,
)
from s2c_batch.kernels.predictors.parts import PredictorParts, PredictorSettings
from s2c_batch.kernels.predictors.preprocess import backbone_input, imagenet_stats


class MaskChangePredictor(DevicePredictor):
    """A mask-level comparator (``model.comparator``) with its models on a device.

    ``target_classes`` is empty: the comparators decide the change of the target classes
    themselves (their instances, or the class rule of M-C-I), so the products' mask is not
    restricted again by the class maps; :attr:`targets` holds the vocabulary's targets.
    """

    #: :func:`~s2c_batch.kernels.raster.blend.accumulate_tiles` passes each tile's core.
    owns_objects = True

    def __init__(self, parts: PredictorParts, settings: PredictorSettings | None = None, *,
                 device: torch.device | str = "cpu", comparator: str, proposals: Proposer | None = None,
                 instance_prompts: Sequence[int] = (), config: ModelConfig | None = None) -> None:
        """Place the models on a device.

        Args:
            parts: the identifier (with its vocabulary) and DINOv2, each when the comparator
                needs it up front (others are built on first use from ``config``).
            settings: precision, TF32, batch size, compiling (``None``: the defaults).
            device: torch device.
            comparator: a mask-level ``model.comparator`` name.
            proposals: the proposals' segmenter (SAM 3's tracker head or SAM), or ``None``
                (built on first use from ``config``).
            instance_prompts: prompt indexes whose instances are the targets' (the first
                prompt of each target class).
            config: the model config, for the parts built on first use.

        Raises:
            ConfigError: ``comparator`` is no mask-level comparator.
        """
        super().__init__(parts, settings or PredictorSettings(), device=device, comparator=comparator)
        if self.spec.family is not Family.MASK_LEVEL:
            raise ConfigError(f"model.comparator={comparator} is no mask-level comparator; choose one of "
                              f"{list(comparator_names(Family.MASK_LEVEL))}")
        self.targets = self.target_classes
        self.target_classes = ()
        self.instance_prompts = tuple(int(p) for p in instance_prompts)
        self.config = config
        self.prob_thd = config.prob_thd if config is not None else 0.1
        #: The run's comparator with its options (:meth:`with_comparator`); ``None``: the defaults.
        self.method: MaskComparator | None = None
        #: Parts built on first use, shared by every view (:meth:`with_comparator`).
        self._parts: dict[str, Any] = {"proposals": proposals.to(self.device).eval() if proposals else None}
        self._lock = threading.Lock()

    def with_comparator(self, method: MaskComparator) -> MaskChangePredictor:
        """This predictor (sharing its models and the parts built on first use) with a run's comparator.

        Args:
            method: the mask-level comparator with the run's options.
        """
        view = copy.copy(self)
        view.method = method
        return view

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> MaskChangePredictor:
        """Build the models ``cfg`` names (see the module docstring for those built later).

        Raises:
            CheckpointError: a checkpoint is missing or holds another architecture.
            ConfigError: an unknown vocabulary or target class.
        """
        cfg.check_checkpoints()
        device = resolve_device(cfg.device)
        spec = cfg.spec
        with seeded(RANDOM_INIT_SEED):
            identifier, vocab = configured_identifier(cfg)
            backbone = load_backbone(cfg) if spec.needs.dinov2 is When.ALWAYS else None
            proposals = build_proposals(cfg, identifier) if spec.proposes_up_front(identifier is not None) else None
        prompts = [vocab.prompt_class.index(t) for t in vocab.targets if t in vocab.prompt_class] if vocab else []
        parts = PredictorParts.with_vocabulary(vocab, backbone=backbone, identifier=identifier)
        return cls(parts, PredictorSettings.of(cfg), device=device, comparator=cfg.comparator, proposals=proposals,
                   instance_prompts=prompts, config=cfg)

    def mask_comparator(self) -> MaskComparator:
        """The run's comparator (:meth:`with_comparator`), or this one with the default options."""
        if self.method is not None:
            return self.method
        return create_mask_comparator(self.comparator)

    def proposals(self) -> Proposer:
        """The proposals' segmenter (built now if the config did not need it up front)."""
        with self._lock:
            if self._parts["proposals"] is None:
                if self.config is None:
                    raise ValueError("class-agnostic proposals need SAM 3's tracker head; build from a config")
                with seeded(RANDOM_INIT_SEED):
                    self._parts["proposals"] = build_proposals(self.config, self.identifier).to(self.device).eval()
            return self._parts["proposals"]

    def dinov2(self) -> DinoV2Taps:
        """DINOv2 (built now if the config did not need it up front)."""
        if self.backbone is not None:
            return self.backbone
        with self._lock:
            if self._parts.get("backbone") is None:
                if self.config is None:
                    raise ValueError("DINOv2 features need the backbone; build from a config")
                cfg = self.config
                if cfg.backbone_checkpoint is None and not cfg.random_init:
                    raise ConfigError("anychange.features=dinov2 needs model.backbone_checkpoint (the DINOv2 "
                                      "weights); set it, or use anychange.features=sam")
                with seeded(RANDOM_INIT_SEED):
                    self._parts["backbone"] = load_backbone(cfg).to(self.device).eval()
            return self._parts["backbone"]

    @torch.no_grad()
    def predict(self, tiles_t1: np.ndarray, tiles_t2: np.ndarray, cores: np.ndarray | None = None) -> Prediction:
        """Change probability, blend priority and class maps of N tile pairs.

        Args:
            tiles_t1: float32 ``[N, 3, H, W]`` in [0, 1].
            tiles_t2: float32 ``[N, 3, H, W]`` in [0, 1].
            cores: bool ``[N, H, W]``: each tile's core; ``None``: every pixel (tiles alone).

        Returns:
            ``Prediction(prob, class_t1, class_t2, weight)``.
        """
        return self._predict_masks(np.asarray(tiles_t1, np.float32), np.asarray(tiles_t2, np.float32), None, cores)

    @torch.no_grad()
    def predict_raw(self, raw_t1: np.ndarray, raw_t2: np.ndarray, scale: float,
                    cores: np.ndarray | None = None) -> Prediction:
        """:meth:`predict` on raw pixels, scaled on the device."""
        return self._predict_masks(np.asarray(raw_t1), np.asarray(raw_t2), scale, cores)

    def _predict_masks(self, a: np.ndarray, b: np.ndarray, scale: float | None,
                       cores: np.ndarray | None) -> Prediction:
        if a.ndim != 4 or a.shape != b.shape:
            raise ValueError(f"tiles must be two [N, C, H, W] arrays of one shape, got {a.shape} and {b.shape}")
        if a.shape[1] != 3:
            raise ConfigError(f"the {self.comparator} comparator takes 3 bands (RGB), but the tiles have "
                              f"{a.shape[1]}; set input.bands to three bands, e.g. [1, 2, 3]")
        n, size = a.shape[0], (int(a.shape[2]), int(a.shape[3]))
        with_classes = self.identifier is not None
        if n == 0:
            empty = np.zeros((0, *size), np.float32)
            cls = np.zeros(empty.shape, np.uint8) if with_classes else None
            return Prediction(prob=empty, class_t1=cls, class_t2=cls, weight=empty.copy())
        spec = self.mask_comparator()
        t1, t2 = self._to_device(a, scale), self._to_device(b, scale)
        core = (torch.from_numpy(np.ascontiguousarray(cores)).to(self.device) if cores is not None
                else torch.ones((n, *size), dtype=torch.bool, device=self.device))
        probs, weights, labels = [], [], []
        with self.float32_mode():
            for s in range(0, n, self.batch_size):
                evidence, lab = self._evidence(spec, t1[s : s + self.batch_size], t2[s : s + self.batch_size],
                                               core[s : s + self.batch_size])
                for ev in evidence:
                    decision = spec.decide(ev)
                    probs.append(decision.prob)
                    weights.append(decision.weight)
                if lab is not None:
                    labels.append(lab)
        prob = torch.stack(probs).cpu().numpy()
        weight = torch.stack(weights).cpu().numpy()
        if not labels:
            return Prediction(prob=prob, weight=weight)
        both = [lab.split(len(lab) // 2) for lab in labels]
        return Prediction(prob=prob, weight=weight, class_t1=torch.cat([x for x, _ in both]).cpu().numpy(),
                          class_t2=torch.cat([y for _, y in both]).cpu().numpy())

    def _evidence(self, spec: MaskComparator, x1: torch.Tensor, x2: torch.Tensor,
                  core: torch.Tensor) -> tuple[list[TileEvidence], torch.Tensor | None]:
        """Run the models on a batch of tile pairs: the evidence of each pair, and the class maps ``[2n, H, W]``."""
        n, size = len(x1), (int(x1.shape[-2]), int(x1.shape[-1]))
        images = torch.cat([x1, x2])
        ident = self.identifier
        vision = scores = labels = None
        instances: list[MaskSet] | None = None
        with_instances = spec.uses_instances(ident is not None)
        if ident is not None:
            with self.autocast(self.precision):
                vision = ident.vision_features(images)
                prompt_scores, found = ident.decode_with_instances(
                    vision, size=size, instance_prompts=self.instance_prompts if with_instances else ())
            scores = class_scores(prompt_scores, ident.prompt_class, ident.num_classes)
            labels = label_map(scores, prob_thd=ident.prob_thd, background=ident.background).to(torch.uint8)
            instances = [MaskSet(f.masks, f.scores) for f in found]
        proposals: list[MaskSet] | None = None
        embedding = None
        if spec.uses_proposals(ident is not None):
            head = self.proposals()
            with self.autocast(self.precision):
                embedding = head.embed(images, hidden=vision.last_hidden_state if vision is not None else None)
                settings = spec.generator()
                proposals = [generate_masks(head.prompter(embedding, i), size, settings) for i in range(2 * n)]
        features = None
        if spec.features == "dinov2":
            backbone = self.dinov2()
            x = backbone_input(images, backbone.img_size, imagenet_stats(self.device))
            with self.autocast(self.comparator_precision):
                features = backbone(x)[-1].float()
        elif spec.features == "sam":
            if with_instances and vision is not None:  # AnyChange*: the identifier's SAM 3 embedding
                features = vision.fpn_hidden_states[2].float()
            elif embedding is not None:
                features = embedding.features.float()
        levels = [level.float() for level in levels_of(vision)] if spec.uses_levels and vision is not None else None
        out = []
        for i in range(n):
            j = n + i
            out.append(TileEvidence(
                size=size,
                core=core[i],
                instances=(instances[i], instances[j]) if with_instances and instances is not None else None,
                proposals=(proposals[i], proposals[j]) if proposals is not None else None,
                features=(features[i], features[j]) if features is not None else None,
                class_scores=(scores[i], scores[j]) if scores is not None else None,
                levels=([x[i] for x in levels], [x[j] for x in levels]) if levels is not None else None,
                targets=self.targets,
                prob_thd=self.prob_thd,
                background=ident.background if ident is not None else 0,
            ))
        return out, labels
