"""Writing model weights: safetensors files the predictor's loaders read.

- :func:`save_state_dict`: a state dict in our key layout (the CACH head that
  ``model.cach_checkpoint`` names), written atomically, optionally in a
  smaller float dtype (the loader casts back to float32).
- :func:`save_dinov2_original`: a timm DINOv2 in the original
  ``dinov2_vit*14_pretrain.pth`` key layout that ``model.backbone_checkpoint``
  expects (timm's keys plus ``mask_token``).
- :func:`compact_dtypes`: per tensor, the smallest float type that keeps it
  within a relative error, so a head fits a size budget (the demo model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import OutputError

#: 8-bit float formats tried by :func:`compact_dtypes` (both cast back to float32 on load).
FLOAT8_TYPES: tuple[torch.dtype, ...] = (torch.float8_e4m3fn, torch.float8_e5m2)


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | Mapping[str, torch.dtype] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write tensors to a ``.safetensors`` file atomically (temporary name, then rename).

    Args:
        state_dict: tensors by name (moved to the CPU, made contiguous).
        path: the file.
        dtype: cast floating tensors to this type, or per name (others unchanged).
        metadata: string metadata stored in the file header.

    Returns:
        The path.

    Raises:
        OutputError: the file cannot be written (exit code 4).
    """
    from safetensors.torch import save_file

    out = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu()
        target = dtype.get(name) if isinstance(dtype, Mapping) else dtype
        if target is not None and t.is_floating_point():
            t = t.to(target)
        tensors[name] = t.contiguous()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write weights {str(out)!r}: {exc}") from exc
    with atomic_path(out, what="weights") as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata or {}))
    return out


def dinov2_original_state_dict(vit: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A timm DINOv2's tensors in the original DINOv2 key layout.

    timm's DINOv2 keys equal the original ones (LayerScale ``ls1.gamma``, MLP
    ``fc1``/``fc2``) except that the original also holds ``mask_token`` ``[1, C]``,
    unused at inference; it is written as zeros.

    Args:
        vit: ``DinoV2Taps.vit`` (a timm ``VisionTransformer`` with a CLS token and ``pos_embed``).

    Returns:
        Tensors by original key, ``pos_embed`` at the model's own grid.
    """
    sd = {k: v.detach().cpu() for k, v in vit.state_dict().items()}
    sd["mask_token"] = torch.zeros(1, sd["cls_token"].shape[-1], dtype=sd["cls_token"].dtype)
    return sd


def save_dinov2_original(vit: torch.nn.Module, path: str | os.PathLike[str], *,
                         dtype: torch.dtype | None = None) -> Path:
    """Write a timm DINOv2 as an original-layout ``.safetensors`` (see :func:`dinov2_original_state_dict`)."""
    return save_state_dict(dinov2_original_state_dict(vit), path, dtype=dtype,
                           metadata={"format": "dinov2-original"})


def _relative_error(t: torch.Tensor, dtype: torch.dtype) -> float:
    ref = t.float()
    err = (ref.to(dtype).float() - ref).norm()
    return float(err / ref.norm().clamp_min(1e-12))


def compact_dtypes(
    state_dict: Mapping[str, torch.Tensor], *, budget_bytes: int, fallback: torch.dtype = torch.float16,
) -> dict[str, torch.dtype]:
    """Pick float16 or an 8-bit float per tensor so the file fits ``budget_bytes``.

    Every floating tensor starts in ``fallback``; then, while the total is over
    the budget, the tensor whose 8-bit form (the better of e4m3 and e5m2) has
    the smallest relative error per byte saved is moved to 8 bits.

    Args:
        state_dict: the tensors.
        budget_bytes: target size of the tensor data.
        fallback: the type of tensors left alone.

    Returns:
        Tensor name -> dtype (floating tensors only).

    Raises:
        ValueError: even all-8-bit does not fit the budget.
    """
    floats = {k: v for k, v in state_dict.items() if v.is_floating_point()}
    other = sum(v.numel() * v.element_size() for k, v in state_dict.items() if k not in floats)
    choice = dict.fromkeys(floats, fallback)
    size = other + sum(v.numel() * torch.empty((), dtype=fallback).element_size() for v in floats.values())
    candidates: list[tuple[float, str, torch.dtype]] = []
    for name, t in floats.items():
        errors = {dt: _relative_error(t, dt) for dt in FLOAT8_TYPES}
        best = min(errors, key=lambda d: errors[d])
        candidates.append((errors[best] / max(1, t.numel()), name, best))
    for _, name, dt in sorted(candidates):
        if size <= budget_bytes:
            break
        size -= floats[name].numel() * (torch.empty((), dtype=fallback).element_size() - 1)
        choice[name] = dt
    if size > budget_bytes:
        raise ValueError(f"the tensors need {size} bytes even in 8-bit floats, over the budget of {budget_bytes}")
    return choice
