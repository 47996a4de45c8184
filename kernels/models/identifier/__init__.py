"""SegEarth-OV3 identifier: SAM 3 prompted with class names."""

from s2c_batch.kernels.models.identifier.fusion import class_scores, label_map, prompt_scores
from s2c_batch.kernels.models.identifier.sam3_models import build_sam3_random, load_sam3_pretrained, tiny_sam3_config
from s2c_batch.kernels.models.identifier.segearth import Instances, SegEarthOV3
from s2c_batch.kernels.models.identifier.tokens import hashed_token_ids, tokenize_prompts
from s2c_batch.kernels.models.identifier.vocab import Vocabulary, load_vocabulary, parse_vocabulary, read_vocabulary

__all__ = [
    "Instances",
    "SegEarthOV3",
    "Vocabulary",
    "build_sam3_random",
    "class_scores",
    "hashed_token_ids",
    "label_map",
    "load_sam3_pretrained",
    "load_vocabulary",
    "parse_vocabulary",
    "prompt_scores",
    "read_vocabulary",
    "tiny_sam3_config",
    "tokenize_prompts",
]
