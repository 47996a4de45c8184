"""Map the authors' CACH checkpoint layout (``CHead_FPN_FDR``) to :class:`CACH`.

The official names are listed in ``tests/data/reference/cach_official_keys.tsv``
(324 entries, 3,949,248 numbers: 3,923,004 learnable parameters plus the four
81x81 relative position index buffers). Each official prefix maps to one of ours,
entry for entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from s2c_batch.kernels.errors import CheckpointError

_EDQA = r"^aggregator(\d)\.spatial_fusion\.sa\."

#: (official pattern, our replacement), tried in order; the first match wins.
_RULES: tuple[tuple[str, str], ...] = (
    (r"^adapterA\.(\d)\.", r"fmm.adapters_t1.\1."),
    (r"^adapterB\.(\d)\.", r"fmm.adapters_t2.\1."),
    (r"^resize_layers\.(\d)\.", r"fmm.resamplers.\1."),
    (r"^diff_fdr(\d)\.conv_sub\.", r"bdfm.\1.diff_attention."),
    (r"^diff_fdr(\d)\.conv_diff_enh1\.", r"bdfm.\1.enhance_t1."),
    (r"^diff_fdr(\d)\.conv_diff_enh2\.", r"bdfm.\1.enhance_t2."),
    (r"^diff_fdr(\d)\.conv_cat\.", r"bdfm.\1.fuse."),
    (r"^diff_fdr(\d)\.conv_dr\.", r"bdfm.\1.reduce."),
    (_EDQA + r"norm1\.", r"edqa.\1.norm_diff."),
    (_EDQA + r"norm2\.", r"edqa.\1.norm_ffn."),
    (_EDQA + r"attention\.relative_position_bias_table$", r"edqa.\1.attention.rel_pos_bias_table"),
    (_EDQA + r"attention\.relative_position_index$", r"edqa.\1.attention.rel_pos_index"),
    (_EDQA + r"attention\.(qk|v|proj)\.", r"edqa.\1.attention.\2."),
    (_EDQA + r"norm_g([12])\.", r"edqa.\1.norm_guide_t\2."),
    (_EDQA + r"conv_g([12])\.", r"edqa.\1.guide_t\2."),
    (_EDQA + r"conv_dr\.", r"edqa.\1.merge."),
    (_EDQA + r"mlp\.gating_network\.", r"edqa.\1.ffn.gate."),
    (_EDQA + r"mlp\.experts\.", r"edqa.\1.ffn.experts."),
    (r"^layer(\d)_rn\.", r"resup.project.\1."),
    (r"^refinenet(\d)\.out_conv\.", r"resup.fusion.\1.out_conv."),
    (r"^refinenet(\d)\.resConfUnit1\.", r"resup.fusion.\1.skip_unit."),
    (r"^refinenet(\d)\.resConfUnit2\.", r"resup.fusion.\1.unit."),
    (r"^class_embed\.(\d)\.", r"resup.head.\1."),
    (r"^class_embed1\.", r"resup.side_heads.0."),
    (r"^class_embed2\.", r"resup.side_heads.1."),
    (r"^class_embed3\.", r"resup.side_heads.2."),
    (r"^class_embedA\.", r"resup.head_t1."),
    (r"^class_embedB\.", r"resup.head_t2."),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _RULES)


def official_key_to_ours(key: str) -> str:
    """Our name for one official key.

    Raises:
        CheckpointError: the key belongs to no part of the authors' head.

    Example:
        >>> official_key_to_ours("diff_fdr2.conv_cat.0.weight")
        'bdfm.2.fuse.0.weight'
    """
    for pattern, replacement in _COMPILED:
        if pattern.match(key):
            return pattern.sub(replacement, key, count=1)
    raise CheckpointError(
        f"{key!r} is not a key of the authors' CACH (CHead_FPN_FDR); "
        "the checkpoint holds another architecture"
    )


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official CACH state dict to our module names.

    Accepts the bare state dict, one nested under ``model`` or ``state_dict``, and
    keys prefixed by ``module.`` (DataParallel). Values are passed through
    unchanged (cast them yourself if they are stored in float16).

    Args:
        state_dict: the authors' ``best.pth`` content.

    Returns:
        A state dict for :class:`~s2c_batch.kernels.models.cach.CACH` (``load_state_dict(strict=True)``).

    Raises:
        CheckpointError: a key that the authors' head does not have.
    """
    for wrapper in ("model", "state_dict"):
        inner = state_dict.get(wrapper)
        if isinstance(inner, Mapping):
            state_dict = inner
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        out[official_key_to_ours(key)] = value
    return out
