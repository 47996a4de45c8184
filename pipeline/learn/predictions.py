"""What a comparator predicts on each pair of a dataset: as ``run`` builds it, fitted to each pair or to the dataset.

``s2c-batch eval`` feeds every pair whole to the predictor, as the authors' evaluation does
(the paper's datasets are 512-px crops: one tile each). The comparator of a pair is the one
a run of that image would use, from its registry entry
(:mod:`s2c_batch.kernels.comparators.registry`):

- nothing fitted (``cach``, the oracle ``cva``, the mask-level comparators): one comparator
  for every pair, made by :func:`~s2c_batch.kernels.comparators.registry.create_comparator`
  from the config's sections as ``run`` makes it (a mask-level method with its options);
- fitted to a scene (``pca_kmeans``, ``irmad``, ``cva`` with ``standardize: scene`` or Otsu,
  ``dcva``), with ``fit="pair"`` (the paper's protocol) each pair is a scene of its own and
  the comparator is fitted to it as ``run`` fits a scene; with ``fit="dataset"`` it is fitted
  once to every pair together:

  - the classical ones by :func:`~s2c_batch.kernels.comparators.registry.fit_comparator` on an
    :class:`~s2c_batch.kernels.comparators.classical.images.ImageStack` of the pairs (each pair,
    or all of them stacked into one scene);
  - DCVA on its fit tiles (:func:`~s2c_batch.pipeline.run.fit.fit_dcva`): the pair itself, or
    ``dcva.fit_tiles`` pairs spread over the dataset.

Images are uint8 RGB scaled to [0, 1] (``/ 255``), every pixel valid.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from s2c_batch.kernels.comparators.classical.images import ImageStack, Pixels
from s2c_batch.kernels.comparators.registry import Fit, RunComparator, create_comparator, fit_comparator
from s2c_batch.kernels.errors import FitError, S2CError
from s2c_batch.kernels.prediction import TilePredictor
from s2c_batch.pipeline.config import Config, comparator_options
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.learn.dataset import PairFiles, read_pair
from s2c_batch.pipeline.run.fit import dcva_fit_part, fit_dcva, settings_of, spread
from s2c_batch.pipeline.run.worker import with_comparator

#: Whom a fitted comparator is fitted to: each image pair (the paper's protocol) or the whole dataset.
FitScope = Literal["pair", "dataset"]

#: The values of ``eval --fit``.
FIT_SCOPES: tuple[FitScope, ...] = ("pair", "dataset")


@dataclass(frozen=True)
class PairPrediction:
    """A comparator's outputs on one pair, with the pair's label.

    Attributes:
        pair: the pair's files.
        label: uint8 ``[H, W]`` change label (0, 1, 255 = ignored).
        prob: float32 ``[H, W]`` change probability.
        class_t1: uint8 ``[H, W]`` class map of t1, or ``None`` without an identifier.
        class_t2: the same for t2.
    """

    pair: PairFiles
    label: np.ndarray
    prob: np.ndarray
    class_t1: np.ndarray | None = None
    class_t2: np.ndarray | None = None


def unit(image: np.ndarray) -> np.ndarray:
    """uint8 ``[C, H, W]`` -> float32 in [0, 1] (``/ 255``, as the authors' ``ToTensor``)."""
    return image.astype(np.float32) / np.float32(255)


def pixels(pair: PairFiles) -> tuple[Pixels, np.ndarray]:
    """A pair as a fit reads it (t1, t2 in [0, 1], every pixel valid) and its label."""
    t1, t2, label = read_pair(pair)
    return (unit(t1), unit(t2), np.ones(label.shape, bool)), label


def fits_each_pair(cfg: Config, fit: FitScope) -> bool:
    """Whether ``cfg``'s comparator is fitted to each pair (a fitted comparator and ``fit="pair"``)."""
    return cfg.model.fitted and fit == "pair"


def dataset_comparator(predictor: TilePredictor, pairs: Sequence[PairFiles], cfg: Config, *,
                       fit: FitScope) -> RunComparator | None:
    """The comparator every pair is predicted with, or ``None`` when each pair gets its own (:func:`fits_each_pair`).

    Not fitted: the run's comparator (``None`` for CACH). Fitted with ``fit="dataset"``: fitted
    once to all of ``pairs``.

    Raises:
        InputError: the dataset cannot be fitted (names the fit's numbers and the fix).
    """
    if not cfg.model.fitted:
        return create_comparator(cfg.model.comparator, comparator_options(cfg))
    if fit == "pair":
        return None
    return fit_pairs(predictor, pairs, cfg, what=f"the {len(pairs)} pairs of the dataset")


def fit_pairs(predictor: TilePredictor, pairs: Sequence[PairFiles], cfg: Config, *, what: str,
              first: tuple[Pixels, np.ndarray] | None = None) -> RunComparator:
    """``cfg``'s comparator fitted to ``pairs`` together (one pair: that pair's scene).

    Args:
        predictor: the predictor (DCVA's fit runs its backbone).
        pairs: the pairs, in order.
        cfg: the config.
        what: the pairs, for error messages.
        first: the first pair already read (its pixels and label), to read it once.

    Raises:
        InputError: the pairs cannot be fitted.
    """
    cache = {0: first[0]} if first is not None else {}

    def read(i: int) -> Pixels:
        return cache[i] if i in cache else pixels(pairs[i])[0]

    try:
        if cfg.model.spec.fit is Fit.TILES:
            layers = tuple(cfg.dcva.layers)
            chosen = spread(len(pairs), cfg.dcva.fit_tiles)
            return fit_dcva(lambda fitted: [dcva_fit_part(predictor, *read(i), layers, fitted) for i in chosen], cfg)
        shapes = tuple(read(i)[2].shape if i in cache else _shape(pairs[i]) for i in range(len(pairs)))
        stack = ImageStack(shapes)
        settings = settings_of(cfg, bands=3, scene_shape=stack.scene_shape)
        return fit_comparator(settings, stack.runner(read))
    except S2CError as exc:
        if not isinstance(exc, FitError):
            raise  # a bad file (InputError), a config error: as they are
        raise InputError(f"{what} cannot be fitted ({cfg.model.comparator}): {exc}") from exc
    except ValueError as exc:  # the DCVA fit's, or a pair of another size than its first image
        raise InputError(f"{what} cannot be fitted ({cfg.model.comparator}): {exc}") from exc


def _shape(pair: PairFiles) -> tuple[int, int]:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(pair.t1) as src:
            return int(src.height), int(src.width)


def bind(predictor: TilePredictor, comparator: RunComparator | None, *, fitted: bool) -> TilePredictor:
    """The predictor using ``comparator`` (as a run's block tasks use it); as it is for ``None``.

    A caller's predictor that cannot take a comparator (no ``with_comparator``) is used as
    it is when nothing is fitted.

    Args:
        predictor: the predictor.
        comparator: the comparator of every pair (:func:`dataset_comparator`).
        fitted: whether ``comparator`` was fitted (it must then be used).

    Raises:
        TypeError: a fitted comparator for a predictor that cannot take one.
    """
    if comparator is None or (not fitted and not hasattr(predictor, "with_comparator")):
        return predictor
    return with_comparator(predictor, comparator)


def predict_pairs(predictor: TilePredictor, pairs: Sequence[PairFiles], *, batch_size: int = 1,
                  progress: bool = False) -> Iterator[PairPrediction]:
    """Predict every pair, in order, ``batch_size`` pairs of one size per ``predict`` call.

    Args:
        predictor: the predictor, with the comparator of every pair (:func:`bind`).
        pairs: the pairs.
        batch_size: pairs per call at most.
        progress: show a progress bar on stderr.

    Raises:
        InputError: a pair's files are bad.
    """
    with _bar(len(pairs), progress) as bar:
        for batch in _batches(pairs, max(1, batch_size)):
            yield from _predicted(predictor, batch)
            bar.update(len(batch))


def predict_fitted_pairs(predictor: TilePredictor, pairs: Sequence[PairFiles], cfg: Config, *,
                         progress: bool = False) -> Iterator[PairPrediction]:
    """Predict every pair, in order, with ``cfg``'s comparator fitted to that pair (the paper's protocol).

    Raises:
        InputError: a pair cannot be fitted (names it), or its files are bad.
    """
    with _bar(len(pairs), progress) as bar:
        for pair in pairs:
            first = pixels(pair)
            fitted = fit_pairs(predictor, [pair], cfg, what=f"pair {pair.name!r}", first=first)
            (t1, t2, _), label = first
            yield from _predicted(with_comparator(predictor, fitted), [(pair, t1, t2, label)])
            bar.update(1)


@contextlib.contextmanager
def _bar(total: int, progress: bool) -> Iterator[Any]:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="eval", unit="pair", disable=not progress, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


_Item = tuple[PairFiles, np.ndarray, np.ndarray, np.ndarray]


def _batches(pairs: Sequence[PairFiles], size: int) -> Iterator[list[_Item]]:
    """Read pairs (in [0, 1]) and group consecutive ones of one image size, ``size`` at most."""
    batch: list[_Item] = []
    for pair in pairs:
        t1, t2, label = read_pair(pair)
        if batch and (len(batch) >= size or batch[0][1].shape != t1.shape):
            yield batch
            batch = []
        batch.append((pair, unit(t1), unit(t2), label))
    if batch:
        yield batch


def _predicted(predictor: Any, batch: Sequence[_Item]) -> Iterator[PairPrediction]:
    pred = predictor.predict(np.stack([b[1] for b in batch]), np.stack([b[2] for b in batch]))
    for i, (pair, _, _, label) in enumerate(batch):
        yield PairPrediction(pair, label, pred.prob[i],
                             pred.class_t1[i] if pred.class_t1 is not None else None,
                             pred.class_t2[i] if pred.class_t2 is not None else None)
