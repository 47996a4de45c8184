"""The ``model`` section of the config: which comparator and identifier run, and how.

Kept in ``kernels`` because the predictor is built from it; the YAML loading and
unknown-key checks live in :mod:`s2c_batch.pipeline.config`. Field types are
limited to what that loader converts: bool, int, float, str, ``Literal``,
``X | None`` and ``tuple[int, ...]`` / ``tuple[str, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from s2c_batch.kernels.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Model settings (YAML section ``model``).

    Attributes:
        comparator: ``cach`` (Seg2Change change head on DINOv2 features) or
            ``cva`` (change vector analysis, the pointwise baseline and oracle).
        identifier: ``segearth_ov3`` (SAM 3 prompted with class names) or ``none``.
        threshold: change probability at or above which a pixel is changed.
        device: ``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: tile pairs per forward pass.
    """

    comparator: Literal["cach", "cva"] = "cach"
    identifier: Literal["segearth_ov3", "none"] = "segearth_ov3"
    threshold: float = 0.5
    device: str = "auto"
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(
                f"model.threshold must be within [0, 1], got {self.threshold!r}; "
                "set e.g. --set model.threshold=0.5"
            )
        if self.batch_size < 1:
            raise ConfigError(f"model.batch_size must be >= 1, got {self.batch_size!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(
                f"model.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
