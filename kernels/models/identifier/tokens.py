"""Token ids of the prompts: from SAM 3's CLIP tokenizer, or hashed ids for tiny random models."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from s2c_batch.kernels.models.identifier.sam3_models import TEXT_LENGTH


def tokenize_prompts(
    tokenizer: object, prompts: Sequence[str], *, length: int = TEXT_LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize prompts the way ``Sam3Processor`` does (padded to 32 tokens).

    Args:
        tokenizer: the Hugging Face tokenizer of the SAM 3 directory.
        prompts: P text prompts.
        length: padded length.

    Returns:
        ``(input_ids, attention_mask)``, int64 ``[P, length]`` each.
    """
    enc = tokenizer(  # type: ignore[operator]
        list(prompts), padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    )
    return enc["input_ids"].long(), enc["attention_mask"].long()


def _hash(word: str) -> int:
    return int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "big")


def hashed_token_ids(
    prompts: Sequence[str], *, vocab_size: int, length: int = TEXT_LENGTH, bos: int = 1, eos: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic token ids without a tokenizer (tests with random tiny models only).

    Each whitespace-separated word maps to ``3 + sha1(word) mod (vocab_size - 3)``,
    framed by ``bos`` / ``eos`` and zero-padded.

    Args:
        prompts: P text prompts.
        vocab_size: size of the text encoder's vocabulary (> 3).
        length: padded length.
        bos: begin token id.
        eos: end token id.

    Returns:
        ``(input_ids, attention_mask)``, int64 ``[P, length]`` each.
    """
    ids = torch.zeros((len(prompts), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        words = [3 + _hash(w) % (vocab_size - 3) for w in prompt.split()]
        seq = [bos, *words[: length - 2], eos]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask
