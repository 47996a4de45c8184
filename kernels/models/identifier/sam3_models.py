"""Building ``transformers.Sam3Model``: from a local Hugging Face directory, or tiny and random for tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from s2c_batch.kernels.errors import CheckpointError

if TYPE_CHECKING:  # transformers is imported on use: it is slow to import
    from transformers import Sam3Config, Sam3Model

#: Token ids of the tiny text encoder (no tokenizer; see :func:`hashed_token_ids`).
TINY_TEXT_VOCAB = 256
#: Text length SAM 3 pads prompts to.
TEXT_LENGTH = 32


def tiny_sam3_config(*, image_size: int = 168) -> Sam3Config:
    """A narrow SAM 3 of the real architecture (ViT, FPN neck, CLIP text, DETR, mask head).

    Width 32, one or two layers per part, 10 queries: about 0.25 M parameters, fast on a CPU.

    Args:
        image_size: input side, a multiple of 14 whose token grid ``image_size / 14``
            is a multiple of the window 6 (e.g. 84, 168).

    Returns:
        A ``transformers.Sam3Config``.
    """
    from transformers import Sam3Config

    grid = image_size // 14
    if image_size % 14 or grid % 6:
        raise ValueError(f"tiny SAM 3 needs image_size = 14 * 6 * n, got {image_size}")
    return Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=image_size,
                patch_size=14,
                window_size=6,
                global_attn_indexes=[1],
                pretrain_image_size=84,
            ),
            fpn_hidden_size=32,
            backbone_feature_sizes=[[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
        ),
        text_config=dict(
            vocab_size=TINY_TEXT_VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=TEXT_LENGTH,
            projection_dim=32,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ),
        geometry_encoder_config=dict(hidden_size=32, num_layers=1, num_attention_heads=2, intermediate_size=64),
        detr_encoder_config=dict(hidden_size=32, num_layers=1, num_attention_heads=2, intermediate_size=64),
        detr_decoder_config=dict(
            hidden_size=32, num_layers=1, num_queries=10, num_attention_heads=2, intermediate_size=64
        ),
        mask_decoder_config=dict(hidden_size=32, num_attention_heads=2),
    )


def build_sam3_random(size: str, *, image_size: int = 1008, seed: int = 0) -> Sam3Model:
    """A randomly initialised SAM 3 (tests and benchmarks; speed does not depend on the values).

    Args:
        size: ``full`` (the released architecture, ~850 M parameters) or ``tiny``.
        image_size: input side (``full`` only accepts 1008).
        seed: torch seed for the initialisation.

    Returns:
        ``transformers.Sam3Model`` in eval mode.
    """
    import torch
    from transformers import Sam3Config, Sam3Model

    if size == "tiny":
        config = tiny_sam3_config(image_size=image_size)
    elif size == "full":
        if image_size != 1008:
            raise ValueError(f"the full SAM 3 takes 1008x1008 inputs, got {image_size}")
        config = Sam3Config()
    else:
        raise ValueError(f"unknown SAM 3 size {size!r}; expected 'full' or 'tiny'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(config)
    return model.eval()


def load_sam3_pretrained(path: str | Path) -> tuple[Sam3Model, object]:
    """Load SAM 3 and its tokenizer from a local Hugging Face model directory (never downloads).

    The weights are loaded in float32 whatever ``config.json`` declares: ``transformers``
    5 otherwise takes the checkpoint's dtype (``dtype: auto``), and a snapshot that
    declares bfloat16 would run the whole model, text encoder included, on rounded
    weights. The authors load an fp32 model and autocast only the activations; the
    predictor does the same (``model.precision``).

    Args:
        path: directory holding ``config.json``, the weights and the tokenizer files
            (a snapshot of ``facebook/sam3``).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        CheckpointError: the directory is missing, or is not a SAM 3 model directory.
    """
    import torch
    from transformers import AutoTokenizer, Sam3Model

    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CheckpointError(
            f"{str(path)!r} is not a Hugging Face model directory (no config.json); "
            "point it at a local snapshot of facebook/sam3"
        )
    try:
        model = Sam3Model.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError for foreign dirs
        raise CheckpointError(f"cannot load SAM 3 from {str(path)!r}: {exc}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"no usable tokenizer in {str(path)!r}: {exc}") from exc
    return model.eval(), tokenizer
