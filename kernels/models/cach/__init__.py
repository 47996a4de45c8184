"""CACH: the category-agnostic change head of Seg2Change."""

from s2c_batch.kernels.models.cach.bdfm import BDFM
from s2c_batch.kernels.models.cach.convert import convert_official_state_dict, official_key_to_ours
from s2c_batch.kernels.models.cach.edqa import EDQA, MoEFFN, WindowAttention
from s2c_batch.kernels.models.cach.fmm import FMM
from s2c_batch.kernels.models.cach.head import CACH, CACH_IN_CHANNELS, CACHOutputs, build_cach
from s2c_batch.kernels.models.cach.resup import FusionBlock, ResidualConvUnit, ResUp

__all__ = [
    "BDFM",
    "CACH",
    "CACH_IN_CHANNELS",
    "EDQA",
    "FMM",
    "CACHOutputs",
    "FusionBlock",
    "MoEFFN",
    "ResUp",
    "ResidualConvUnit",
    "WindowAttention",
    "build_cach",
    "convert_official_state_dict",
    "official_key_to_ours",
]
