"""Devices and precision: which device a config names, TF32 on CUDA, autocast for a part.

A worker's predictor runs on one device (``model.device``); on CUDA each part runs in
the precision its config key gives (autocast for ``bf16`` / ``fp16``) and float32 work
may use TF32 (``model.tf32``) for the duration of a ``predict`` call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from s2c_batch.kernels.errors import ConfigError

#: The autocast dtypes of ``model.precision`` and ``model.comparator_precision``.
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; other names as given.

    Raises:
        ConfigError: CUDA is named but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"model.device is {name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


@contextlib.contextmanager
def tf32_allowed(enabled: bool) -> Iterator[None]:
    """Let float32 matmuls and cuDNN convolutions use TF32 (or not) inside the block.

    Sets torch's process-wide flags (``torch.set_float32_matmul_precision`` ``high`` /
    ``highest`` and ``torch.backends.cudnn.allow_tf32``) and restores them on exit.
    TF32 only exists on CUDA devices of compute capability 8.0 and later.
    """
    matmul, conv = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = conv


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Autocast for a part of the given precision: on CUDA for ``bf16`` / ``fp16``, else none."""
    if device.type == "cuda" and precision in AUTOCAST:
        return torch.autocast("cuda", dtype=AUTOCAST[precision])
    return contextlib.nullcontext()
