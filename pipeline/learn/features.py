"""Backbone features for training: the frozen DINOv2 taps of dataset images, optionally cached on disk.

Images are prepared exactly as :class:`~s2c_batch.kernels.predictors.tile.ChangePredictor`
prepares tiles at inference (scaled to [0, 1], resized to
``model.backbone_input_size`` bilinearly with antialiasing, normalised per
``model.normalize``), so a head trained here sees at inference what it saw in
training. Labels are resized with nearest neighbour.

The cache (``--cache-features DIR``) holds one float16 file per image under
``DIR/<backbone fingerprint>/``, keyed by the SHA-256 of the image file: a
different backbone, checkpoint, input size or normalisation uses another
sub-folder, and an edited image gets a new key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import DinoV2Taps
from s2c_batch.kernels.predictors.models import RANDOM_INIT_SEED, load_backbone, seeded
from s2c_batch.kernels.predictors.preprocess import backbone_input, imagenet_stats
from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import CheckpointError, OutputError
from s2c_batch.pipeline.run.fingerprint import hash_path

#: The label value excluded from the loss and the metrics.
IGNORE = 255


def build_backbone(model: ModelConfig) -> DinoV2Taps:
    """The frozen backbone the config names, built as the predictor builds it.

    With ``random_init`` and no checkpoint the weights are the predictor's
    seeded random ones, so a head trained on them matches ``random_init`` inference.

    Raises:
        CheckpointError: ``model.backbone_checkpoint`` is unset (without
            ``random_init``) or not a file.
    """
    path = model.backbone_checkpoint
    if path is None and not model.random_init:
        raise CheckpointError(
            "model.backbone_checkpoint is not set; training needs the frozen DINOv2 weights, e.g. "
            "--set model.backbone_checkpoint=dinov2_vitb14_pretrain.pth (weights are never downloaded)"
        )
    if path is not None and not Path(path).is_file():
        raise CheckpointError(
            f"model.backbone_checkpoint = {path!r} does not exist; place the original DINOv2 weights "
            "there or set --set model.backbone_checkpoint=PATH"
        )
    with seeded(RANDOM_INIT_SEED):
        return load_backbone(model)


def prepare_images(images: torch.Tensor, model: ModelConfig) -> torch.Tensor:
    """uint8 images to the backbone's input, as the predictor prepares tiles.

    Args:
        images: uint8 ``[B, 3, H, W]``.
        model: supplies ``backbone_input_size`` and ``normalize``.

    Returns:
        float32 ``[B, 3, S, S]`` with ``S = backbone_input_size``.
    """
    stats = imagenet_stats(images.device) if model.normalize == "imagenet" else None
    return backbone_input(images.float() / 255.0, model.backbone_input_size, stats)


def prepare_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    """Labels resized with nearest neighbour.

    Args:
        labels: uint8 ``[B, H, W]`` (0, 1, 255 = ignore).
        size: output side.

    Returns:
        int64 ``[B, size, size]``.
    """
    if tuple(labels.shape[-2:]) != (size, size):
        labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0]
    return labels.long()


def backbone_fingerprint(backbone: DinoV2Taps, model: ModelConfig) -> str:
    """SHA-256 of the backbone weights and the preprocessing that shapes its features."""
    digest = hashlib.sha256()
    spec = {"backbone": model.backbone, "input": model.backbone_input_size, "normalize": model.normalize,
            "taps": list(backbone.taps)}
    digest.update(json.dumps(spec, sort_keys=True).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Backbone taps of images, one float16 ``[4, C, g, g]`` file per image."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        """Open (and create) ``root/<fingerprint[:16]>/``.

        Raises:
            OutputError: the folder cannot be created.
        """
        self.folder = Path(root) / fingerprint[:16]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the feature cache {str(self.folder)!r}: {exc}") from exc
        self._keys: dict[Path, str] = {}

    def _file(self, image: Path) -> Path:
        key = self._keys.get(image)
        if key is None:
            key = self._keys[image] = hash_path(str(image)).removeprefix("sha256:")
        return self.folder / f"{key[:40]}.pt"

    def get(self, image: Path) -> torch.Tensor | None:
        """The cached taps ``[4, C, g, g]`` (float16) of an image, or None."""
        path = self._file(image)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a truncated file from an interrupted run: recompute it
            return None

    def put(self, image: Path, taps: torch.Tensor) -> None:
        """Store taps ``[4, C, g, g]`` of an image (written atomically)."""
        path = self._file(image)
        with atomic_path(path, what="feature cache entry") as tmp:
            torch.save(taps.to(torch.float16).contiguous().cpu(), tmp)


def stack_taps(taps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-image taps ``[4, C, g, g]`` to the head's input: four ``[B, C, g, g]`` float32 maps."""
    batch = torch.stack([t.float() for t in taps])
    return [batch[:, i] for i in range(batch.shape[1])]
