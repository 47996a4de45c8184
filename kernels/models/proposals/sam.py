"""Original SAM (``transformers.SamModel``) as a point prompter, for class-agnostic mask proposals.

AnyChange's and DynamicEarth's releases propose masks with SAM ViT-H. With
``model.sam_checkpoint`` naming a local Hugging Face SAM directory (a snapshot of
``facebook/sam-vit-huge``), the proposals come from it instead of SAM 3's tracker head:
the tile resized to SAM's 1024 x 1024 input (square tiles need no padding), ImageNet
normalisation as ``SamImageProcessor``; the embedding is ``256 x 64 x 64``; AnyChange's
matching features are that embedding with the affine part of the neck's last LayerNorm
undone (``(e - bias) / weight``, the release's ``use_normalized_feature``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from s2c_batch.kernels.errors import CheckpointError
from s2c_batch.kernels.models.proposals.tracker import ImageEmbedding

if TYPE_CHECKING:
    from transformers import SamConfig, SamModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tiny_sam_config(*, image_size: int = 128) -> SamConfig:
    """A 32-wide SAM of the real architecture (tests): patch 16, an 8 x 8 embedding at 128 px."""
    from transformers import SamConfig

    return SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, output_channels=32,
                           image_size=image_size, patch_size=16, global_attn_indexes=[1], window_size=4,
                           num_pos_feats=16),
        prompt_encoder_config=dict(hidden_size=32, image_size=image_size, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )


def load_sam_pretrained(path: str | Path) -> SamModel:
    """Original SAM from a local Hugging Face directory, in float32 (never downloads).

    Raises:
        CheckpointError: no model directory, or not a SAM one.
    """
    from transformers import SamModel

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CheckpointError(f"{str(path)!r} is not a Hugging Face model directory (no config.json); "
                              "point it at a local snapshot of facebook/sam-vit-huge")
    try:
        model: SamModel = SamModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for foreign dirs
        raise CheckpointError(f"cannot load SAM from {str(path)!r}: {exc}") from exc
    return model.eval()


class SamProposals(nn.Module):
    """Point prompts on original SAM.

    Args:
        sam: a ``transformers.SamModel``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, sam: SamModel) -> None:
        super().__init__()
        self.sam: SamModel = sam
        self.sam.requires_grad_(False)
        config: Any = sam.config  # nested configs are typed as dict | config | None
        self.input_size = int(config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> SAM's input: resized (bilinear, antialiased), ImageNet-normalised."""
        size = (self.input_size, self.input_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (images - self.mean) / self.std

    @torch.no_grad()
    def embed(self, images: torch.Tensor | None = None, *, hidden: torch.Tensor | None = None) -> ImageEmbedding:
        """SAM's embedding of images in [0, 1] (``hidden``, SAM 3's backbone state, is not SAM's: ignored)."""
        if images is None:
            raise ValueError("SAM's embedding needs the images")
        emb = self.sam.get_image_embeddings(self.preprocess(images))
        norm: Any = self.sam.vision_encoder.neck.layer_norm2
        plain = (emb - norm.bias.view(1, -1, 1, 1)) / norm.weight.view(1, -1, 1, 1)
        return ImageEmbedding(levels=(emb,), features=plain)

    def prompter(self, embedding: ImageEmbedding, index: int) -> Any:
        """A :data:`~s2c_batch.kernels.comparators.mask_level.amg.PointPrompter` on image ``index`` of ``embedding``."""
        emb = embedding.levels[0][index : index + 1]

        @torch.no_grad()
        def prompt(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            xy = points.to(device=emb.device, dtype=emb.dtype) * self.input_size
            labels = torch.ones((1, len(points), 1), dtype=torch.int32, device=emb.device)
            out = self.sam(image_embeddings=emb, input_points=xy[None, :, None, :], input_labels=labels,
                           multimask_output=True)
            return out.pred_masks[0], out.iou_scores[0]

        return prompt
