"""Model-alone benchmark: ms per tile pair at several batch sizes, split by part, and peak GPU memory.

Times :class:`~s2c_batch.kernels.predictors.tile.ChangePredictor` on random tiles already
in host memory (the ``predict`` call includes the host-to-device copy and the copy
back), then each part on the device, each in its own precision: DINOv2 taps, CACH,
SAM 3 vision pass, SAM 3's geometry CLS token (once per image), and SAM 3 text +
decoder + fusion (text features cached, as in production) with the official
33-token prompt and with the text-only one. ``geometry_cost_ratio`` is ``predict``
with the geometry token over ``predict`` without it (``ms_per_pair_text_only``).

With ``--mask-comparators`` it times instead the paper's mask-level comparators
(``kernels/predictors/masks.py``) against the parts they share with Seg2Change, called in turn
with each: the identifier (SAM 3 vision pass, prompts, fusion) where the comparator runs it,
and DINOv2's taps where it reads DINOv2 features, on both dates of the pairs.
``extra_ms_per_pair`` is a comparator's ``predict`` minus those: its proposals (SAM 3's
tracker head on the point grid; for AnyChange without identifier also SAM 3's vision pass),
instance masks, features and decision.

Usage::

    python bench/model.py --config tiny                    # CPU, seconds
    python bench/model.py --config tiny --mask-comparators --cpu-time  # the mask-level comparators' own cost
    python bench/model.py --config tiny --mask-comparators --cpu-time --set amg.pred_iou_thresh=0 \
        --set amg.stability_score_thresh=0 --set model.confidence_threshold=0  # random weights: keep every mask
    python bench/model.py --config tiny --cpu-time         # CPU time of one torch thread (shared machines)
    python bench/model.py --config full --batch-sizes 1,4,8  # GPU, random weights of the real sizes
    python bench/model.py --config full --batch-sizes 8 --set model.compile=[vision,detector]

``full`` is ``configs/default.yaml`` (the paper's setup) with ``random_init`` (speed
does not depend on the values). Each row's ``first_call_s`` is the first ``predict``
at that batch size (compilation included, with ``model.compile``). ``--cpu-time``
(CPU only) runs torch on one thread and reports the CPU time of that thread instead
of wall time: on a machine shared with other jobs it measures what the model costs,
not how busy the machine is. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2c_batch.kernels.predictors.tile import ChangePredictor
from s2c_batch.pipeline.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


#: The clock of every timing: wall time, or this thread's CPU time with ``--cpu-time``.
_clock: Callable[[], float] = time.perf_counter


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = _clock()
        fn()
        _sync(device)
        times.append(_clock() - start)
    return float(np.median(times))


def _time_alternating(fns: list[Callable[[], object]], device: torch.device, repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, called in turn in every round after one warm-up round.

    A change of machine load during the run then weighs on all of them alike.
    """
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeats + 1):
        for fn, out in zip(fns, times, strict=True):
            start = _clock()
            fn()
            _sync(device)
            if round_:
                out.append(_clock() - start)
    return [float(np.median(t)) for t in times]


def _with_geometry(ident: Any, on: bool, fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run with the identifier's geometry token on or off."""

    def call() -> object:
        ident.geometry_prompt = on
        try:
            return fn()
        finally:
            ident.geometry_prompt = True

    return call


def _config(name: str, overrides: list[str]) -> Any:
    if name == "full":
        return load_config(CONFIGS / "default.yaml", ["model.random_init=true", *overrides])
    path = CONFIGS / f"{name}.yaml" if (CONFIGS / f"{name}.yaml").is_file() else Path(name)
    return load_config(path, overrides)


def _model_config(name: str, overrides: list[str]) -> Any:
    return _config(name, overrides).model


def bench(pred: ChangePredictor, *, tile: int, batch_sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    """Time the predictor and its parts for each batch size."""
    device = pred.device
    rng = np.random.default_rng(0)
    rows = []
    for bs in batch_sizes:
        pred.batch_size = bs
        a = rng.random((bs, 3, tile, tile), dtype=np.float32)
        b = rng.random((bs, 3, tile, tile), dtype=np.float32)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        row: dict[str, Any] = {"batch_size": bs}
        start = time.perf_counter()
        pred.predict(a, b)  # first call at this batch size: includes compiling when model.compile is set
        _sync(device)
        row["first_call_s"] = round(time.perf_counter() - start, 2)
        ident = pred.identifier
        if ident is None:
            row["ms_per_pair"] = 1000 * _time(partial(pred.predict, a, b), device, repeats) / bs
        else:  # against the same predictor with transformers' text-only prompt, in alternation
            predict = partial(pred.predict, a, b)
            both = _time_alternating([predict, _with_geometry(ident, False, predict)], device, repeats)
            row["ms_per_pair"], text_only = (1000 * t / bs for t in both)
            row["ms_per_pair_text_only"] = round(text_only, 2)
            row["geometry_cost_ratio"] = round(row["ms_per_pair"] / text_only, 4)
        parts: dict[str, float] = {}
        t1 = torch.from_numpy(a).to(device)
        t2 = torch.from_numpy(b).to(device)
        with torch.no_grad(), pred.float32_mode():
            if pred.backbone is not None and pred.cach is not None:
                with pred.autocast(pred.comparator_precision):
                    size = pred.backbone.img_size
                    x = torch.nn.functional.interpolate(torch.cat([t1, t2]), size=(size, size), mode="bilinear")
                    taps = pred.backbone(x)
                    parts["dinov2_taps"] = _time(partial(pred.backbone, x), device, repeats)
                    fa, fb = [f[:bs] for f in taps], [f[bs:] for f in taps]
                    parts["cach"] = _time(partial(pred.cach, fa, fb), device, repeats)
            if ident is not None:
                with pred.autocast(pred.precision):
                    images = torch.cat([t1, t2])
                    vision = ident.vision_features(images)
                    parts["sam3_vision"] = _time(partial(ident.vision_features, images), device, repeats)
                    parts["sam3_geometry_cls"] = _time(partial(ident.geometry_tokens, vision), device, repeats)
                    decode = partial(ident.decode, vision, size=(tile, tile))  # geometry token included
                    (parts["sam3_text_decoder_fusion"], parts["sam3_text_decoder_fusion_text_only"]) = (
                        _time_alternating([decode, _with_geometry(ident, False, decode)], device, repeats)
                    )
        row["parts_ms_per_pair"] = {k: round(1000 * v / bs, 2) for k, v in parts.items()}
        row["pairs_per_s"] = round(1000 / row["ms_per_pair"], 3)
        row["ms_per_pair"] = round(row["ms_per_pair"], 2)
        if device.type == "cuda":
            row["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
            row["peak_gpu_mem_gb_per_pair"] = round(row["peak_gpu_mem_gb"] / bs, 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


#: The mask-level comparators timed by ``--mask-comparators``: (row name, comparator, identifier, DynamicEarth mode).
MASK_CASES: list[tuple[str, str, bool, str]] = [
    ("anychange", "anychange", False, "imc"),
    ("anychange*", "anychange", True, "imc"),
    ("inst_ceg", "inst_ceg", True, "imc"),
    ("dynamicearth_imc", "dynamicearth", True, "imc"),
    ("dynamicearth_mci", "dynamicearth", True, "mci"),
    ("ucd_scm", "ucd_scm", True, "imc"),
]


def bench_mask_comparators(full: Any, *, tile: int, batch_size: int, repeats: int) -> list[dict[str, Any]]:
    """Each mask-level comparator's ms per pair, and what it adds to the identifier and DINOv2 they share.

    One predictor holds the models (SAM 3 with its tracker head, DINOv2), built once; each
    comparator is a view of it, as on a worker, with the options of ``full``'s sections.
    """
    import copy
    import dataclasses

    from s2c_batch.kernels.comparators.options import ComparatorOptions
    from s2c_batch.kernels.comparators.registry import create_mask_comparator
    from s2c_batch.kernels.predictors.masks import MaskChangePredictor
    from s2c_batch.kernels.predictors.preprocess import backbone_input

    cfg = full.model
    rng = np.random.default_rng(0)
    a = rng.random((batch_size, 3, tile, tile), dtype=np.float32)
    b = a.copy()
    b[:, :, tile // 4 : tile // 2, tile // 4 : tile // 2] = rng.random((batch_size, 3, 1, 1), dtype=np.float32)
    start = time.perf_counter()
    base = MaskChangePredictor.from_config(dataclasses.replace(cfg, comparator="dynamicearth",
                                                               identifier="segearth_ov3"))
    base.proposals()
    print(json.dumps({"build_s": round(time.perf_counter() - start, 1)}), flush=True)
    base.batch_size = batch_size
    device = base.device
    images = torch.cat([torch.from_numpy(a), torch.from_numpy(b)]).to(device)

    def shared(identifier: bool, dinov2: bool) -> Callable[[], object]:
        @torch.no_grad()
        def run() -> object:
            out = []
            with base.float32_mode():
                if identifier:
                    out.append(base.classes(images))
                if dinov2:
                    backbone = base.dinov2()
                    with base.autocast(base.comparator_precision):
                        out.append(backbone(backbone_input(images, backbone.img_size, base._stats)))
            return out

        return run

    rows = []
    for name, comparator, identifier, mode in MASK_CASES:
        spec = create_mask_comparator(comparator, ComparatorOptions(
            amg=full.amg, anychange=full.anychange, inst_ceg=full.inst_ceg,
            dynamicearth=dataclasses.replace(full.dynamicearth, mode=mode), ucd_scm=full.ucd_scm))
        pred: Any = base.with_comparator(spec)
        if not identifier:
            pred = copy.copy(pred)
            pred.identifier = None
        uses = {"identifier": identifier, "dinov2": pred.mask_comparator().features == "dinov2"}
        t_shared, t_total = _time_alternating([shared(**uses), partial(pred.predict, a, b)], device, repeats)
        evidence, _ = pred._evidence(pred.mask_comparator(), torch.from_numpy(a).to(device),
                                     torch.from_numpy(b).to(device),
                                     torch.ones((batch_size, tile, tile), dtype=torch.bool, device=device))
        masks = [len(s) for ev in evidence for pair in (ev.instances, ev.proposals) if pair for s in pair]
        row = {"comparator": name, "batch_size": batch_size, "shared": [k for k, v in uses.items() if v],
               "ms_per_pair": round(1000 * t_total / batch_size, 2),
               "shared_ms_per_pair": round(1000 * t_shared / batch_size, 2),
               "extra_ms_per_pair": round(1000 * (t_total - t_shared) / batch_size, 2),
               "masks_per_tile": round(float(np.mean(masks)), 1) if masks else 0.0}
        if device.type == "cuda":
            row["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    """Parse arguments, build the predictor, print the rows and one final JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="tiny, full, a packaged config name or a YAML path")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated, e.g. 1,4,8")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default 256 tiny, 512 otherwise)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="SECTION.KEY=VALUE overrides (model.*, amg.*, ...)")
    parser.add_argument("--cpu-time", action="store_true", help="one torch thread, timed by its CPU time (CPU only)")
    parser.add_argument("--mask-comparators", action="store_true",
                        help="time the mask-level comparators against the identifier and DINOv2 they share")
    args = parser.parse_args()
    global _clock
    if args.cpu_time:
        torch.set_num_threads(1)
        _clock = time.thread_time

    cfg = _model_config(args.config, args.set)
    tile = args.tile or (256 if cfg.backbone == "tiny" else 512)
    batch_sizes = [int(s) for s in (args.batch_sizes or ("1,4" if cfg.backbone == "tiny" else "1,4,8")).split(",")]
    if args.mask_comparators:
        rows = bench_mask_comparators(_config(args.config, args.set), tile=tile, batch_size=batch_sizes[-1],
                                      repeats=args.repeats)
        print(json.dumps({"bench": "mask_comparators", "config": args.config, "tile": tile,
                          "device": torch.cuda.get_device_name() if torch.cuda.is_available() and
                          cfg.device != "cpu" else "cpu",
                          "clock": "thread CPU time, 1 torch thread" if args.cpu_time else "wall", "rows": rows}))
        return
    start = time.perf_counter()
    pred = ChangePredictor.from_config(cfg)
    build_s = time.perf_counter() - start
    device = pred.device
    if args.cpu_time and device.type != "cpu":
        raise SystemExit("--cpu-time measures CPU work; use it with model.device=cpu")
    rows = bench(pred, tile=tile, batch_sizes=batch_sizes, repeats=args.repeats)
    best = min(rows, key=lambda r: r["ms_per_pair"])
    summary: dict[str, Any] = {
        "bench": "model",
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": (
            {"identifier": cfg.precision, "comparator": cfg.comparator_precision, "tf32": cfg.tf32}
            if device.type == "cuda" else "fp32"
        ),
        "tile": tile,
        "prompts": pred.identifier.num_prompts if pred.identifier is not None else 0,
        "build_s": round(build_s, 2),
        "compiled": list(pred.compiled),
        "compile_mode": cfg.compile_mode,
        "clock": "thread CPU time, 1 torch thread" if args.cpu_time else "wall",
        "best_ms_per_pair": best["ms_per_pair"],
        "best_batch_size": best["batch_size"],
        "best_pairs_per_s": best["pairs_per_s"],
        "rows": rows,
    }
    if device.type == "cuda":
        summary["peak_gpu_mem_gb"] = max(r["peak_gpu_mem_gb"] for r in rows)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
