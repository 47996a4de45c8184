"""``s2c-batch train``: the authors' recipe for the CACH change head on frozen backbone features.

Recipe (``train_cach_dino.py``): both images of a pair are resized to the
backbone's input (504 for the paper) and labels with nearest neighbour; the
frozen DINOv2 gives four taps per date; the head is trained with
:func:`s2c_batch.kernels.learn.losses.cach_loss` (0.8 main CE + 0.1 x the three side
CEs + 0.1 unchanged similarity, CE ignoring 255), AdamW (lr 1e-3, weight decay
1e-2, betas 0.9/0.999) and a cosine schedule stepped every iteration over
``epochs x iterations per epoch``; batch size 4, 20 epochs, shuffled, last
batch kept. Epochs, batch size and learning rate are options.

One deliberate difference: images are normalised per ``model.normalize``, the
setting the predictor uses at inference, so training and inference agree. The
authors trained with ImageNet statistics but evaluated without normalisation;
``--set model.normalize=imagenet`` reproduces their training.

After every epoch the head is written to ``--out`` (safetensors, our key layout,
loadable from ``model.cach_checkpoint``) and the full training state to
``<out stem>.train.pt`` (head, optimiser, schedule, history), so ``--resume``
continues after the last finished epoch with the same result. With validation
datasets, ``--out`` holds the epoch with the best IoU^c (the authors' model
selection) and ``<out stem>.last.safetensors`` the last one.

``train_backbone`` (not the authors' recipe) trains the backbone together with
the head, for small backbones that have no pretrained weights, and writes it,
in the original DINOv2 key layout, to ``backbone_out`` (with validation: the
best epoch's, matching ``--out``, and the last one beside it as
``<stem>.last.safetensors``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from s2c_batch.kernels.learn.losses import cach_loss
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.models.backbone import DinoV2Taps
from s2c_batch.kernels.models.cach import CACH, build_cach
from s2c_batch.kernels.predictors.device import resolve_device
from s2c_batch.kernels.predictors.parts import PredictorParts, PredictorSettings
from s2c_batch.kernels.predictors.tile import ChangePredictor
from s2c_batch.pipeline.atomic import atomic_path
from s2c_batch.pipeline.errors import ConfigError, OutputError, OutputExistsError
from s2c_batch.pipeline.learn.dataset import PairFiles, open_dataset, read_image, read_label
from s2c_batch.pipeline.learn.evaluate import evaluate_pairs
from s2c_batch.pipeline.learn.features import (
    FeatureCache,
    backbone_fingerprint,
    build_backbone,
    prepare_images,
    prepare_labels,
    stack_taps,
)
from s2c_batch.pipeline.learn.weights import save_dinov2_original, save_state_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """Hyper-parameters (defaults: the authors').

    Attributes:
        epochs: passes over the training pairs.
        batch_size: pairs per iteration.
        lr: AdamW learning rate (the cosine schedule starts here and ends at 0).
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        seed: seed of the head's initialisation and of the shuffling.
        train_backbone: also train the backbone (not the recipe; for backbones without pretrained weights).
    """

    epochs: int = 20
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    train_backbone: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs!r}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size!r}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr!r}")


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        out: the head weights.
        state: the training state file.
        epochs: epochs finished (all of them when complete).
        history: one record per epoch: mean loss terms, seconds, validation metrics.
        best_epoch: epoch (1-based) written to ``out`` when validating, else the last.
        backbone_out: the trained backbone file, with ``train_backbone``.
    """

    out: Path
    state: Path
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    backbone_out: Path | None = None


def state_path(out: Path) -> Path:
    """The training state file beside ``out`` (``head.safetensors`` -> ``head.train.pt``)."""
    return out.with_name(out.name.removesuffix(".safetensors") + ".train.pt")


def _signature(pairs: Sequence[PairFiles], options: TrainOptions, model: ModelConfig, fingerprint: str) -> str:
    names = sorted(f"{p.t1.parent.parent.name}/{p.name}" for p in pairs)
    spec = {"pairs": names, "options": asdict(options), "backbone": fingerprint,
            "model": {k: getattr(model, k) for k in ("backbone", "backbone_input_size", "normalize")}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _check_out(out: Path, state: Path, resume: bool, overwrite: bool) -> None:
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {str(out)!r} must end in .safetensors (the head is written as safetensors)")
    existing = [p for p in (out, state) if p.exists()]
    if existing and not (resume or overwrite):
        raise OutputExistsError(
            f"{str(existing[0])!r} exists; pass --resume to continue that training, --overwrite to start "
            "again, or choose another --out"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder of --out {str(out)!r}: {exc}") from exc


class _Features:
    """Taps of a batch: from the cache, else from the backbone (stored when caching)."""

    def __init__(self, backbone: DinoV2Taps, model: ModelConfig, device: torch.device,
                 cache: FeatureCache | None, trainable: bool) -> None:
        self.backbone, self.model, self.device = backbone, model, device
        self.cache, self.trainable = cache, trainable

    def _run(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        x = torch.cat([prepare_images(img[None].to(self.device), self.model) for img in images])
        with torch.set_grad_enabled(self.trainable):
            return self.backbone.taps_of(x)

    def __call__(self, paths: list[Path]) -> list[torch.Tensor]:
        if self.cache is None:
            return self._run([torch.from_numpy(read_image(p)) for p in paths])
        taps: list[torch.Tensor | None] = [self.cache.get(p) for p in paths]
        todo = [i for i, t in enumerate(taps) if t is None]
        if todo:
            fresh = self._run([torch.from_numpy(read_image(paths[i])) for i in todo])
            for j, i in enumerate(todo):
                one = torch.stack([f[j] for f in fresh])
                self.cache.put(paths[i], one)
                taps[i] = one.to(torch.float16)
        return [t.to(self.device) for t in stack_taps([t for t in taps if t is not None])]


def _validate(backbone: DinoV2Taps, head: CACH, model: ModelConfig, pairs: Sequence[PairFiles],
              device: torch.device) -> dict[str, Any]:
    predictor = ChangePredictor(PredictorParts(backbone=backbone, cach=copy.deepcopy(head)),
                                PredictorSettings(normalize=model.normalize, precision="fp32",
                                                  batch_size=model.batch_size), device=device)
    acc, _ = evaluate_pairs(predictor, pairs, threshold=model.numeric_threshold("s2c-batch train"),
                            batch_size=model.batch_size)
    return {k: v for k, v in acc.metrics().to_dict().items() if k in ("f1", "iou", "kappa", "precision", "recall")}


def train_change_head(
    datasets: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    model: ModelConfig,
    options: TrainOptions = TrainOptions(),
    *,
    val: Sequence[str | os.PathLike[str]] = (),
    resume: bool = False,
    overwrite: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    backbone_out: str | os.PathLike[str] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the change head on one or more LEVIR-layout datasets.

    Args:
        datasets: DATASET folders (``A/``, ``B/``, ``label/``); their pairs are pooled.
        out: the head's ``.safetensors`` file.
        model: the ``model`` config section: backbone size, checkpoint, input size,
            normalisation, device (``random_init`` allows a seeded random backbone).
        options: hyper-parameters.
        val: DATASET folders scored (IoU^c, category-agnostic) after every epoch.
        resume: continue from ``<out stem>.train.pt``.
        overwrite: start again, replacing an existing ``out``.
        cache_dir: cache the frozen backbone's features here (not with ``train_backbone``).
        backbone_out: where the trained backbone goes (``train_backbone`` only).
        stop_after: stop once this many epochs are finished (a later ``resume``
            continues); None = train all ``options.epochs``.
        progress: progress bar with the running loss on stderr.

    Returns:
        The files written and the per-epoch history.

    Raises:
        InputError: a dataset folder is missing or its files do not pair up (exit 3).
        ConfigError / CheckpointError: bad options, a missing backbone checkpoint,
            or a training state written with other settings (exit 2).
        OutputExistsError: ``out`` exists without ``resume`` or ``overwrite`` (exit 4).
    """
    from tqdm import tqdm

    out_path = Path(out)
    state_file = state_path(out_path)
    if not datasets:
        raise ConfigError("give at least one DATASET folder to train on")
    pairs = [p for d in datasets for p in open_dataset(d).pairs]
    val_pairs = [p for d in val for p in open_dataset(d).pairs]
    if options.train_backbone and (cache_dir is not None or backbone_out is None):
        raise ConfigError("train_backbone needs backbone_out and cannot cache features (they change)")
    _check_out(out_path, state_file, resume, overwrite)

    device = resolve_device(model.device)
    backbone = build_backbone(model).to(device)
    fingerprint = backbone_fingerprint(backbone, model)
    if options.train_backbone:
        backbone.vit.requires_grad_(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        head = build_cach(model.backbone).to(device)
    params = list(head.parameters()) + (list(backbone.vit.parameters()) if options.train_backbone else [])
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay, betas=options.betas)
    iters = math.ceil(len(pairs) / options.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs * iters)
    signature = _signature(pairs, options, model, fingerprint)

    start, history = 0, []
    best_epoch: int | None = None
    best_iou = -1.0
    if resume and state_file.exists():
        state = torch.load(state_file, map_location=device, weights_only=True)
        if state.get("signature") != signature:
            raise ConfigError(
                f"training state {str(state_file)!r} was written for other datasets, options or backbone; "
                "resume with the same DATASETs, --epochs, --batch-size, --lr, --seed and config, or pass "
                "--overwrite to start again"
            )
        head.load_state_dict(state["head"])
        if options.train_backbone:
            backbone.vit.load_state_dict(state["backbone"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
        best_epoch, best_iou = state["best"]["epoch"], float(state["best"]["iou"])
        log.info("resuming %s after epoch %d of %d", state_file, start, options.epochs)

    cache = FeatureCache(cache_dir, fingerprint) if cache_dir is not None else None
    features = _Features(backbone, model, device, cache, options.train_backbone)
    size = model.backbone_input_size
    trained_vit = backbone.vit if options.train_backbone else None
    meta = {"format": "s2c-batch-cach", "backbone": model.backbone, "backbone_input_size": str(size),
            "normalize": model.normalize}
    last = options.epochs if stop_after is None else min(options.epochs, max(start, stop_after))
    for epoch in range(start, last):
        t0 = time.perf_counter()
        head.train()
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(options.seed * 7919 + epoch))
        sums = {"loss": 0.0, "main": 0.0, "side": 0.0, "similarity": 0.0}
        bar = tqdm(total=iters, desc=f"epoch {epoch + 1}/{options.epochs}", unit="it",
                   disable=not progress, file=sys.stderr)
        for it in range(iters):
            batch = [pairs[int(i)] for i in order[it * options.batch_size : (it + 1) * options.batch_size]]
            t1 = features([p.t1 for p in batch])
            t2 = features([p.t2 for p in batch])
            labels = torch.stack([prepare_labels(torch.from_numpy(read_label(p.label))[None], size)[0]
                                  for p in batch]).to(device)
            terms = cach_loss(head(t1, t2, return_aux=True), labels)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            scheduler.step()
            for key, value in zip(sums, terms, strict=True):
                sums[key] += float(value.detach())
            bar.set_postfix(loss=f"{sums['loss'] / (it + 1):.4f}")
            bar.update(1)
        bar.close()
        record: dict[str, Any] = {"epoch": epoch + 1, **{k: v / iters for k, v in sums.items()},
                                  "lr": scheduler.get_last_lr()[0]}
        head.eval()
        weights = {k: v.detach().cpu() for k, v in head.state_dict().items()}
        is_best = True
        if val_pairs:
            record["val"] = _validate(backbone, head, model, val_pairs, device)
            is_best = (record["val"]["iou"] or 0.0) > best_iou
            _save_weights(weights, trained_vit, _last(out_path), _last(backbone_out), meta, epoch)
        if is_best:
            best_epoch, best_iou = epoch + 1, float(record.get("val", {}).get("iou") or -1.0)
            _save_weights(weights, trained_vit, out_path, backbone_out, meta, epoch)
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        _save_state(state_file, {
            "signature": signature, "epoch": epoch + 1, "head": head.state_dict(),
            "backbone": backbone.vit.state_dict() if options.train_backbone else {},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "history": history, "best": {"epoch": best_epoch, "iou": best_iou},
        })
        log.info("epoch %d: %s", epoch + 1, record)
        if progress:
            val_iou = record.get("val", {}).get("iou")
            val_text = f", val IoU^c {val_iou:.4f}" if val_iou is not None else ""
            print(f"epoch {epoch + 1}/{options.epochs}: loss {record['loss']:.4f}{val_text} "
                  f"({record['seconds']:.0f} s)", file=sys.stderr)
    return TrainResult(out=out_path, state=state_file, epochs=len(history), history=history,
                       best_epoch=best_epoch, backbone_out=Path(backbone_out) if backbone_out else None)


def _last(path: str | os.PathLike[str] | None) -> Path | None:
    """``head.safetensors`` -> ``head.last.safetensors`` (the last epoch when validating)."""
    if path is None:
        return None
    p = Path(path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".last.safetensors")


def _save_weights(head: dict[str, torch.Tensor], vit: torch.nn.Module | None, out: Path | None,
                  backbone_out: str | os.PathLike[str] | None, meta: dict[str, str], epoch: int) -> None:
    """The head and, when it is trained (``vit``), the backbone of one epoch, written as a matching pair."""
    if out is not None:
        save_state_dict(head, out, metadata={**meta, "epoch": str(epoch + 1)})
    if vit is not None and backbone_out is not None:
        save_dinov2_original(vit, Path(backbone_out))


def _save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path, what="the training state") as tmp:
        torch.save(state, tmp)
