#!/usr/bin/env python
"""Per-pixel agreement of our identifier (and comparator precision) with the authors' path, on a GPU.

    python scripts/sam3_parity.py DATASET --sam3 HF_DIR --official-checkpoint SAM3_PT [--vocab whu_levir]
        [--limit 20] [--backbone-checkpoint PTH --cach-checkpoint PTH] [--json OUT]

Needs CUDA, the official ``sam3`` package (``facebookresearch/sam3``, which the authors
ran unmodified) importable, and local weights: ``HF_DIR`` a snapshot of ``facebook/sam3``
for ``transformers`` and ``SAM3_PT`` the official ``sam3.pt``. ``DATASET`` is a
LEVIR-layout folder of 512 x 512 benchmark tiles (``A/``, ``B/``); the first ``--limit``
pairs are used. Nothing is downloaded.

Identifier, on every t1 and t2 tile:

- official: ``Sam3Processor.set_image`` (uint8 resize to 1008, mean = std = 0.5), then per
  prompt ``backbone.forward_text`` and ``forward_grounding`` with the dummy geometric
  prompt, as ``set_text_prompt`` does, under bf16 autocast (the authors'
  ``seg_model_sam3.py``). Each prompt's outputs are fused by
  :func:`~s2c_batch.kernels.models.identifier.fusion.prompt_scores` (the SegEarth-OV3 formula,
  checked line by line against the authors' code), then max over synonyms, argmax and
  ``prob_thd``, so the comparison isolates SAM 3 itself: weights, prompt, preprocessing,
  precision.
- ours: :class:`~s2c_batch.kernels.predictors.tile.ChangePredictor` built from the default
  config's model section (``transformers.Sam3Model``, fp32 weights, bf16 autocast), with
  the official 33-token prompt and, for contrast, ``transformers``' text-only prompt.

Reported per variant: the share of pixels whose class agrees with the official path,
and the largest difference of a prompt's fused score. With ``--backbone-checkpoint`` and
``--cach-checkpoint``: the share of pixels whose change decision (``p > 0.5``) flips
when the comparator runs under bf16 autocast instead of fp32 (the authors'). The last
line printed is one JSON object (also written to ``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _images(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise SystemExit(f"no images in {folder}")
    return files[:limit]


def _official_scores(model: Any, processor: Any, image: Any, prompts: tuple[str, ...],
                     confidence_threshold: float) -> torch.Tensor:
    """Fused score per prompt from the official SAM 3, the way the authors call it.

    Returns:
        float32 ``[P, H, W]``.
    """
    from s2c_batch.kernels.models.identifier import prompt_scores

    width, height = image.size
    out = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        state = processor.set_image(image)
        for prompt in prompts:
            state["backbone_out"].update(model.backbone.forward_text([prompt], device="cuda"))
            outputs = model.forward_grounding(
                backbone_out=state["backbone_out"], find_input=processor.find_stage,
                geometric_prompt=model._get_dummy_prompt(), find_target=None,
            )
            out.append(prompt_scores(
                outputs["pred_masks"], outputs["pred_logits"].squeeze(-1), outputs["presence_logit_dec"],
                outputs["semantic_seg"], size=(height, width), confidence_threshold=confidence_threshold,
            )[0])
    return torch.stack(out)


def _labels(scores: torch.Tensor, prompt_class: tuple[int, ...], k: int, prob_thd: float) -> torch.Tensor:
    from s2c_batch.kernels.models.identifier import class_scores, label_map

    classes = class_scores(scores[None], prompt_class, k)
    return label_map(classes, prob_thd=prob_thd)[0]


def identifier_parity(pred: Any, prompts: tuple[str, ...], files: list[Path], model: Any,
                      processor: Any) -> dict[str, Any]:
    """Agreement of our class maps with the official ones, with and without the geometry token."""
    from PIL import Image

    ident, cfg_k = pred.identifier, len(pred.class_names)
    agree: dict[str, list[float]] = {"ours_33_tokens": [], "text_only_32_tokens": []}
    worst: dict[str, float] = {name: 0.0 for name in agree}
    for path in files:
        image = Image.open(path).convert("RGB")
        official = _official_scores(model, processor, image, prompts, ident.confidence_threshold)
        official_labels = _labels(official, ident.prompt_class, cfg_k, ident.prob_thd)
        x = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None].to(pred.device)
        for name, geometry in (("ours_33_tokens", True), ("text_only_32_tokens", False)):
            ident.geometry_prompt = geometry
            with torch.no_grad(), pred.float32_mode(), pred.autocast(pred.precision):
                scores = ident.decode(ident.vision_features(x), size=x.shape[-2:])[0]
            labels = _labels(scores, ident.prompt_class, cfg_k, ident.prob_thd)
            agree[name].append(float((labels == official_labels).float().mean()))
            worst[name] = max(worst[name], float((scores - official).abs().max()))
        ident.geometry_prompt = True
    return {name: {"pixel_agreement": float(np.mean(v)), "min_tile_agreement": float(np.min(v)),
                   "max_prompt_score_diff": worst[name]} for name, v in agree.items()}


def comparator_flips(cfg: Any, pairs: list[tuple[Path, Path]]) -> dict[str, Any]:
    """Share of pixels whose change decision differs between fp32 (the authors') and bf16 autocast."""
    from PIL import Image

    from s2c_batch.kernels.predictors.tile import ChangePredictor

    model = dataclasses.replace(cfg, identifier="none")
    fp32 = ChangePredictor.from_config(dataclasses.replace(model, comparator_precision="fp32"))
    bf16 = ChangePredictor.from_config(dataclasses.replace(model, comparator_precision="bf16"))
    flips, near, total = 0, 0, 0
    for a, b in pairs:
        t1, t2 = (np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255 for p in (a, b))
        p32, p16 = fp32.predict(t1, t2).prob, bf16.predict(t1, t2).prob
        flips += int(((p32 > 0.5) != (p16 > 0.5)).sum())
        near += int((np.abs(p32 - 0.5) < 0.05).sum())
        total += p32.size
    return {"flip_rate": flips / total, "share_within_0.05_of_threshold": near / total, "pixels": total}


def main() -> None:
    """Parse the arguments, run both checks, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="LEVIR-layout folder of 512 px tiles (A/, B/)")
    parser.add_argument("--sam3", required=True, help="local Hugging Face directory of facebook/sam3")
    parser.add_argument("--official-checkpoint", required=True, help="the official sam3.pt")
    parser.add_argument("--vocab", default="whu_levir", help="a packaged vocabulary or a .txt path")
    parser.add_argument("--limit", type=int, default=20, help="pairs used")
    parser.add_argument("--backbone-checkpoint", default=None, help="dinov2_vitb14_pretrain.pth")
    parser.add_argument("--cach-checkpoint", default=None, help="the authors' best.pth")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this check needs a CUDA device (the authors' path runs SAM 3 under CUDA bf16 autocast)")

    from sam3.model.sam3_image_processor import Sam3Processor
    from sam3.model_builder import build_sam3_image_model

    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary
    from s2c_batch.kernels.predictors.tile import ChangePredictor
    from s2c_batch.pipeline.config import load_config

    cfg = load_config("default", [f"model.sam3_checkpoint={args.sam3}", f"model.vocab={args.vocab}",
                                  "model.comparator=cva", "model.device=cuda"]).model
    pred = ChangePredictor.from_config(cfg)
    prompts = load_vocabulary(cfg.vocab).prompts  # the identifier's prompt order
    official = build_sam3_image_model(checkpoint_path=args.official_checkpoint, load_from_HF=False, device="cuda")
    processor = Sam3Processor(official, device="cuda", confidence_threshold=cfg.confidence_threshold)
    a_files = _images(args.dataset / "A", args.limit)
    b_files = [args.dataset / "B" / f.name for f in a_files]
    result: dict[str, Any] = {
        "check": "sam3_parity", "tiles": 2 * len(a_files), "vocab": args.vocab,
        "identifier": identifier_parity(pred, prompts, a_files + b_files, official, processor),
    }
    if args.backbone_checkpoint and args.cach_checkpoint:
        comparator = dataclasses.replace(cfg, comparator="cach", backbone_checkpoint=args.backbone_checkpoint,
                                         cach_checkpoint=args.cach_checkpoint)
        result["comparator_bf16_vs_fp32"] = comparator_flips(comparator, list(zip(a_files, b_files, strict=True)))
    text = json.dumps(result)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)



if __name__ == "__main__":
    main()
