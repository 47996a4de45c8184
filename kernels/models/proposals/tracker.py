"""SAM 3's promptable tracker head as a point prompter, for class-agnostic mask proposals.

The released SAM 3 (``facebook/sam3``) holds the detector the identifier runs and a
SAM-2-style *tracker*: its own FPN neck on the same ViT backbone, a prompt encoder and a
mask decoder that answers point prompts with three masks and their predicted IoU.
``transformers`` loads it as ``Sam3TrackerModel`` from the same directory
(``detector_model.vision_encoder.backbone.*`` and ``tracker_neck.*`` become its vision
encoder). Here its backbone is the identifier's, so one ViT pass per image serves both
(:meth:`TrackerProposals.embed` takes the identifier's ``last_hidden_state``).

The image embedding the mask decoder reads is the tracker neck's three finest levels
(288, 144 and 72 px at 1008), the first two projected by the decoder's ``conv_s0`` /
``conv_s1``, the 72 px level plus the learned "no memory" embedding, as SAM 3's image
predictor does. (``Sam3TrackerModel.get_image_embeddings`` in ``transformers`` 5.24 adds
that embedding to the fourth, 36 px level, which it then drops.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from s2c_batch.kernels.errors import CheckpointError
from s2c_batch.kernels.models.identifier.sam3_models import tiny_sam3_config
from s2c_batch.kernels.models.identifier.segearth import SAM3_MEAN, SAM3_STD

if TYPE_CHECKING:
    from transformers import Sam3TrackerConfig, Sam3TrackerModel


def tiny_tracker_config(*, image_size: int = 168) -> Sam3TrackerConfig:
    """The tracker head matching :func:`~s2c_batch.kernels.models.identifier.sam3_models.tiny_sam3_config` (32 wide)."""
    from transformers import Sam3TrackerConfig

    detector: Any = tiny_sam3_config(image_size=image_size)  # nested configs are typed as dict | config | None
    vision = detector.vision_config.to_dict()
    return Sam3TrackerConfig(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=32, image_size=image_size, patch_size=14, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )


def build_tracker_random(size: str, *, image_size: int = 1008, seed: int = 0) -> Sam3TrackerModel:
    """A randomly initialised tracker head (tests and benchmarks).

    Args:
        size: ``full`` (the released architecture) or ``tiny``.
        image_size: input side (``full``: 1008).
        seed: torch seed.
    """
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    if size == "tiny":
        config = tiny_tracker_config(image_size=image_size)
    elif size == "full":
        config = Sam3TrackerConfig()
    else:
        raise ValueError(f"unknown SAM 3 size {size!r}; expected 'full' or 'tiny'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3TrackerModel(config)
    return model.eval()


def load_tracker_pretrained(path: str | Path) -> Sam3TrackerModel:
    """The tracker head of a local SAM 3 directory (a snapshot of ``facebook/sam3``), in float32.

    Raises:
        CheckpointError: no model directory, or one without the tracker's weights (a
            directory holding the detector alone, e.g. ``Sam3Model.save_pretrained``).
    """
    import torch as _torch
    from transformers import Sam3TrackerModel

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CheckpointError(f"{str(path)!r} is not a Hugging Face model directory (no config.json); "
                              "point it at a local snapshot of facebook/sam3")
    try:
        loaded: Any = Sam3TrackerModel.from_pretrained(str(path), local_files_only=True, dtype=_torch.float32,
                                                       output_loading_info=True)
        model, info = loaded
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for foreign dirs
        raise CheckpointError(f"cannot load SAM 3's tracker head from {str(path)!r}: {exc}") from exc
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("vision_encoder.backbone.")]
    if missing:
        raise CheckpointError(
            f"{str(path)!r} holds no weights of SAM 3's tracker head ({len(missing)} missing, e.g. {missing[0]!r}); "
            "class-agnostic mask proposals need the whole facebook/sam3 snapshot (tracker_model.*, tracker_neck.*)"
        )
    tracker: Sam3TrackerModel = model.eval()
    return tracker


@dataclass(frozen=True)
class ImageEmbedding:
    """A promptable segmenter's embedding of a batch of images.

    Attributes:
        levels: the mask decoder's inputs, each ``[B, C_l, h_l, w_l]``, finest first (SAM 3's
            tracker: three; original SAM: one).
        features: ``[B, C, g, g]``, AnyChange's ``sam`` features: the image embedding of the
            model that made the masks (the tracker neck's level on the backbone's token grid;
            SAM's neck output with its last LayerNorm's affine undone, as AnyChange does).
    """

    levels: tuple[torch.Tensor, ...]
    features: torch.Tensor


class TrackerProposals(nn.Module):
    """Point prompts on SAM 3's tracker head.

    Args:
        tracker: a ``transformers.Sam3TrackerModel``.
        input_size: side of its (square) input.
    """

    def __init__(self, tracker: Sam3TrackerModel, *, input_size: int) -> None:
        super().__init__()
        self.tracker: Sam3TrackerModel = tracker
        self.tracker.requires_grad_(False)
        self.input_size = input_size

    def share_backbone(self, backbone: nn.Module) -> None:
        """Use ``backbone`` (the identifier's ViT: the same weights in the release) in place of its own."""
        self.tracker.vision_encoder.backbone = backbone

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> the input: resized (bilinear, antialiased), to [-1, 1]."""
        size = (self.input_size, self.input_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return (images - SAM3_MEAN) / SAM3_STD

    @torch.no_grad()
    def embed(self, images: torch.Tensor | None = None, *, hidden: torch.Tensor | None = None) -> ImageEmbedding:
        """The embedding of images in [0, 1], or of the backbone's ``last_hidden_state`` ``[B, g * g, C]``."""
        if hidden is None:
            if images is None:
                raise ValueError("embed needs images or the backbone's hidden state")
            hidden = self.tracker.vision_encoder.backbone(self.preprocess(images)).last_hidden_state
        b, tokens, c = hidden.shape
        g = int(round(tokens**0.5))
        spatial = hidden.reshape(b, g, g, c).permute(0, 3, 1, 2)
        fpn, _ = self.tracker.vision_encoder.neck(spatial)
        decoder = self.tracker.mask_decoder
        memory = self.tracker.no_memory_embedding.reshape(1, -1, 1, 1)
        levels = (decoder.conv_s0(fpn[0]), decoder.conv_s1(fpn[1]), fpn[2] + memory)
        return ImageEmbedding(levels=levels, features=fpn[2])

    def prompter(self, embedding: ImageEmbedding, index: int) -> Any:
        """A :data:`~s2c_batch.kernels.comparators.mask_level.amg.PointPrompter` on image ``index`` of ``embedding``."""
        levels = [level[index : index + 1] for level in embedding.levels]

        @torch.no_grad()
        def prompt(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            device = levels[-1].device
            xy = points.to(device=device, dtype=levels[-1].dtype) * self.input_size
            labels = torch.ones((1, len(points), 1), dtype=torch.int32, device=device)
            out = self.tracker(image_embeddings=levels, input_points=xy[None, :, None, :], input_labels=labels,
                               multimask_output=True)
            return out.pred_masks[0], out.iou_scores[0]

        return prompt


def shared_hidden(vision: Any) -> torch.Tensor:
    """The backbone's ``last_hidden_state`` ``[B, g * g, C]`` of an identifier vision pass."""
    return vision.last_hidden_state


def levels_of(vision: Any, indexes: Sequence[int] = (1, 2, 3)) -> list[torch.Tensor]:
    """FPN levels of the identifier's vision pass (UCD-SCM: the three coarsest of four), each ``[B, C, h, w]``."""
    return [vision.fpn_hidden_states[i] for i in indexes]
