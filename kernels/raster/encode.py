"""The uint8 encodings of the products (DESIGN.md, "Products").

- ``change_prob`` = round(254 * p), 255 = nodata.
- ``change_mask`` = 1 where ``p > threshold`` (:func:`is_change`; and, with an
  identifier and target classes, where t1 or t2 is a target class), else 0;
  255 = nodata.
- ``class_t1`` / ``class_t2`` = index in the vocabulary, 255 = nodata.

A pixel that is nodata in either input is nodata in every product.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NODATA = 255


def is_change(prob: np.ndarray, threshold: float) -> np.ndarray:
    """The change decision: ``prob > threshold``, strictly.

    With the threshold at 0.5 this is the authors' decision, the argmax over the
    two change logits, in which a tie (``p == 0.5``) is class 0, no change. The two
    can differ only where the logits differ by less than float32 resolves around
    0.5 (``|l1 - l0|`` below about 6e-8), where ``p`` rounds to 0.5 exactly.

    Args:
        prob: float32 change probability, any shape.
        threshold: ``model.threshold``.

    Returns:
        bool, the shape of ``prob``.

    Example:
        >>> is_change(np.array([0.49, 0.5, 0.51], np.float32), 0.5).tolist()
        [False, False, True]
    """
    return prob > np.float32(threshold)


def encode_products(
    prob: np.ndarray,
    valid: np.ndarray,
    *,
    threshold: float | None,
    class_t1: np.ndarray | None = None,
    class_t2: np.ndarray | None = None,
    target_classes: Sequence[int] = (),
    with_classes: bool = False,
) -> dict[str, np.ndarray]:
    """Encode blended outputs of one block into the uint8 products.

    Args:
        prob: float32 ``[h, w]`` change probability (NaN where unknown).
        valid: bool ``[h, w]``: valid in both inputs.
        threshold: ``model.threshold``; ``None`` leaves ``change_mask`` out (it is
            written later, from the scene's Otsu threshold).
        class_t1: uint8 ``[h, w]`` class map of t1, or ``None``.
        class_t2: uint8 ``[h, w]`` class map of t2, or ``None``.
        target_classes: class indexes whose change counts; empty = any class.
        with_classes: write ``class_t1`` / ``class_t2`` (the identifier runs);
            all nodata when the block had no valid pixel.

    Returns:
        ``{"change_prob", "change_mask"[, "class_t1", "class_t2"]}``, each uint8 ``[h, w]``
        (no ``change_mask`` when ``threshold`` is ``None``).

    Example:
        >>> p = np.array([[0.0, 0.5, 1.0]], np.float32); v = np.array([[True, True, False]])
        >>> {k: a.tolist() for k, a in encode_products(p, v, threshold=0.5).items()}
        {'change_prob': [[0, 127, 255]], 'change_mask': [[0, 0, 255]]}
    """
    ok = valid & np.isfinite(prob)
    p = np.nan_to_num(prob, nan=0.0)  # the one float temporary of the block
    np.clip(p, 0.0, 1.0, out=p)
    change = is_change(p, threshold) if threshold is not None else None
    if change is not None and with_classes:
        change &= target_change(class_t1, class_t2, target_classes)
    np.multiply(p, np.float32(254.0), out=p)
    np.rint(p, out=p)
    out_prob = p.astype(np.uint8)
    out_prob[~ok] = NODATA
    out = {"change_prob": out_prob}
    if change is not None:
        out_mask = change.view(np.uint8)
        out_mask[~ok] = NODATA
        out["change_mask"] = out_mask
    if with_classes:
        for name, cls in (("class_t1", class_t1), ("class_t2", class_t2)):
            out[name] = (
                np.full(prob.shape, NODATA, np.uint8)
                if cls is None
                else np.where(ok, cls, NODATA).astype(np.uint8)
            )
    return out


def target_change(class_t1: np.ndarray | None, class_t2: np.ndarray | None,
                  target_classes: Sequence[int]) -> np.ndarray | bool:
    """Where a change counts: t1 or t2 is a target class (``True`` everywhere without targets).

    Args:
        class_t1: uint8 ``[h, w]`` class map of t1, or ``None``.
        class_t2: uint8 ``[h, w]``, or ``None``.
        target_classes: class indexes whose change counts; empty = any class.

    Returns:
        bool ``[h, w]``, or ``True`` when every pixel counts.
    """
    if class_t1 is None or class_t2 is None or not len(target_classes):
        return True
    targets = np.asarray(list(target_classes), np.uint8)
    return np.isin(class_t1, targets) | np.isin(class_t2, targets)
