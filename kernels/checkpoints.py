"""Reading checkpoint files from local paths (never downloading)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from s2c_batch.kernels.errors import CheckpointError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` or torch (``.pth``/``.pt``/``.bin``) file.

    Torch files are read with ``weights_only=True``. A dict nested under ``model``
    or ``state_dict`` is unwrapped.

    Args:
        path: local file.

    Returns:
        The tensors by name.

    Raises:
        CheckpointError: the file is missing or unreadable, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(path))
        else:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the readers raise many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"checkpoint {str(path)!r} does not hold a state dict of tensors")
    return dict(loaded)


def load_exact(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """``module.load_state_dict(strict=True)`` with a CheckpointError on any mismatch.

    Values are cast to the dtype of the module's tensors (float16 files load into
    float32 modules).

    Args:
        module: the model to fill.
        state_dict: tensors by our names.
        source: what to name in the error (file and architecture).

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} shape mismatches, e.g. {k!r} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
            )
        raise CheckpointError(f"{source} holds another architecture: {'; '.join(details)}")
    cast = {k: v.to(own[k].dtype) for k, v in state_dict.items()}
    module.load_state_dict(cast, strict=True)
