"""Score a predicted change mask against a change truth raster, streaming.

Both rasters (band 1) are read window by window, in windows aligned to the
prediction's internal blocks (about 4 Mpx each), so any scene size scores in
bounded memory. One pass accumulates a joint histogram of (truth value,
prediction code); the truth convention is resolved from it at the end, and the
paper's binary metrics (:mod:`s2c_batch.kernels.learn.metrics`) come from the
resulting confusion matrix.

Prediction: 0 = unchanged, 1 = changed, 255 = nodata (ignored), as
``change_mask.tif`` of ``s2c-batch run``; any other value is an error.

Truth conventions (``truth_values``):

- ``"01"``: 0 unchanged, 1 changed, 255 ignored (``truth.tif`` of ``s2c-batch synth``).
- ``"0255"``: 0 unchanged, 255 changed (PNG-style masks, LEVIR-CD / WHU-CD labels).
- ``"12"``: the OSCD convention, 1 unchanged, 2 changed; 0 and 255 ignored.
- ``"auto"`` (default), from the set of values present: a subset of {0, 1, 255}
  holding 1, or exactly {0} -> ``"01"``; a subset of {0, 255} holding 255 ->
  ``"0255"``; a subset of {0, 1, 2, 255} holding 2 -> ``"12"``; else an error.
  A 0/1 truth whose only non-zero value is the 255 nodata is therefore read as
  a 0/255 mask: pass ``"01"`` explicitly for such a truth.

The files' nodata tags are not used; only the values above.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from s2c_batch.kernels.learn.metrics import BinaryMetrics, binary_metrics
from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.source import Source

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

log = logging.getLogger(__name__)

TruthValues = Literal["auto", "01", "0255", "12"]

#: truth value -> 0 unchanged, 1 changed, None ignored.
TRUTH_CONVENTIONS: dict[str, dict[int, int | None]] = {
    "01": {0: 0, 1: 1, 255: None},
    "0255": {0: 0, 255: 1},
    "12": {1: 0, 2: 1, 0: None, 255: None},
}
_LABELS = {"01": "0/1 (255 ignored)", "0255": "0/255", "12": "1/2 OSCD (0, 255 ignored)"}

#: about this many pixels per window read.
WINDOW_PIXELS: int = 1 << 22

_PRED_LUT = np.full(256, 3, np.uint8)
_PRED_LUT[0], _PRED_LUT[1], _PRED_LUT[255] = 0, 1, 2


@dataclass(frozen=True)
class ScoreResult:
    """Metrics of one prediction against one truth.

    Attributes:
        pred: the prediction raster.
        truth: the truth raster.
        truth_values: the truth convention used (``"01"``, ``"0255"`` or ``"12"``).
        metrics: F1^c, IoU^c, Kappa, precision, recall, OA and the counts.
        ignored: pixels not counted (nodata in the prediction or ignored truth values).
    """

    pred: Path | str
    truth: Path | str
    truth_values: str
    metrics: BinaryMetrics
    ignored: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` -> ``None``)."""
        return {"pred": str(self.pred), "truth": str(self.truth), "truth_values": self.truth_values,
                **self.metrics.to_dict(), "ignored": self.ignored}


def _as_given(source: Source) -> Path | str:
    """A local path as a ``Path``, a URL as written."""
    return source.text if source.remote else source.path


def _windows(height: int, width: int, block: tuple[int, int], target: int) -> Iterator[tuple[int, int, int, int]]:
    """``(row, col, h, w)`` windows aligned to ``block`` of about ``target`` pixels."""
    bh, bw = max(1, block[0]), max(1, block[1])
    if bw >= width:  # striped file: full-width bands of whole strips
        wh, ww = max(bh, (target // max(1, width)) // bh * bh), width
    else:
        k = max(1, math.isqrt(max(1, target // (bh * bw))))
        wh, ww = bh * k, bw * k
    for row in range(0, height, wh):
        for col in range(0, width, ww):
            yield row, col, min(wh, height - row), min(ww, width - col)


@contextlib.contextmanager
def _open(source: Source, role: str, storage: StorageConfig | None) -> Iterator[DatasetReader]:
    """Open a local file or a URL (the ``storage`` section says how) for the whole ``with`` block."""
    from rasterio.errors import RasterioIOError

    from s2c_batch.pipeline.inputs.remote import open_raster, resolve_storage
    from s2c_batch.pipeline.inputs.remote_errors import remote_input_error

    path, remote = source.text, source.remote
    if not remote and not source.path.exists():
        raise InputError(f"{role} file {path!r} does not exist; check the path")
    cm = open_raster(source, resolve_storage(storage or StorageConfig()) if remote else storage)
    try:
        src = cm.__enter__()
    except RasterioIOError as exc:
        if remote:
            raise remote_input_error(f"{role} file", path, exc) from exc
        raise InputError(f"{role} file {path!r} is not a readable raster: {exc}") from exc
    try:
        yield src
    finally:
        cm.__exit__(None, None, None)


def _check_integer(ds: DatasetReader, path: str, role: str) -> None:
    if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise InputError(
            f"{role} file {str(path)!r} holds {ds.dtypes[0]} values; it must be an integer change mask "
            "(e.g. change_mask.tif, not change_prob.tif)"
        )


def _resolve(present: set[int], truth_values: str, path: str) -> str:
    if truth_values == "auto":
        if present <= {0, 1, 255} and (1 in present or present <= {0}):
            truth_values = "01"
        elif present <= {0, 255}:
            truth_values = "0255"
        elif present <= {0, 1, 2, 255} and 2 in present:
            truth_values = "12"
        else:
            raise InputError(
                f"TRUTH file {str(path)!r} holds values {sorted(present)[:10]!r}, which match no known convention "
                "(0/1, 0/255, 1/2 OSCD); convert it to a 0/1 mask"
            )
    if truth_values not in TRUTH_CONVENTIONS:
        raise InputError(f"unknown truth convention {truth_values!r}; use one of auto, {', '.join(TRUTH_CONVENTIONS)}")
    bad = sorted(present - set(TRUTH_CONVENTIONS[truth_values]))
    if bad:
        raise InputError(
            f"TRUTH file {str(path)!r} holds values {bad[:10]!r} that the {truth_values!r} convention does not "
            f"define; pass the right --truth-values (auto, {', '.join(TRUTH_CONVENTIONS)})"
        )
    return truth_values


def score_rasters(
    pred: str | os.PathLike[str] | Source,
    truth: str | os.PathLike[str] | Source,
    *,
    truth_values: TruthValues = "auto",
    window_pixels: int = WINDOW_PIXELS,
    storage: StorageConfig | None = None,
) -> ScoreResult:
    """Binary change metrics of ``pred`` against ``truth``, streamed window by window.

    Args:
        pred: prediction GeoTIFF (band 1: 0/1, 255 = nodata): a path, a URL or a ``/vsi...`` path.
        truth: truth GeoTIFF (band 1, convention per ``truth_values``), likewise.
        truth_values: truth convention, see the module docstring.
        window_pixels: about how many pixels to read at once.
        storage: how remote rasters are reached (the ``storage`` config section).

    Returns:
        The metrics of the confusion matrix summed over the whole scene.

    Raises:
        InputError: a file is missing or unreadable, the shapes differ, or a
            raster holds values its convention does not define (exit code 3).
    """
    pred_src, truth_src = Source.parse(pred), Source.parse(truth)
    pred_path, truth_path = pred_src.text, truth_src.text
    hist = np.zeros((256, 3), np.int64)  # truth value x prediction code (0, 1, ignored)
    with _open(pred_src, "PRED", storage) as dp, _open(truth_src, "TRUTH", storage) as dt:
        if dp.shape != dt.shape:
            raise InputError(
                f"PRED file {str(pred_path)!r} has shape {dp.shape[0]}x{dp.shape[1]} (rows x cols) but TRUTH file "
                f"{str(truth_path)!r} has {dt.shape[0]}x{dt.shape[1]}; score rasters of the same grid"
            )
        _check_integer(dp, pred_path, "PRED")
        _check_integer(dt, truth_path, "TRUTH")
        if dp.crs != dt.crs or not dp.transform.almost_equals(dt.transform):
            log.warning("PRED %s and TRUTH %s differ in CRS or transform; scoring pixel by pixel anyway",
                        pred_path, truth_path)
        from rasterio.windows import Window

        for row, col, h, w in _windows(dp.height, dp.width, dp.block_shapes[0], window_pixels):
            win = Window(col, row, w, h)
            p = dp.read(1, window=win)
            t = dt.read(1, window=win)
            if p.dtype == np.uint8:
                pc = _PRED_LUT[p]
            else:
                pc = np.full(p.shape, 3, np.uint8)
                pc[p == 0], pc[p == 1], pc[p == 255] = 0, 1, 2
            if pc.max(initial=0) == 3:
                bad = np.unique(p[pc == 3])[:10].tolist()
                raise InputError(
                    f"PRED file {str(pred_path)!r} holds values {bad!r}; a change mask holds only 0, 1 and 255 (nodata)"
                )
            if t.dtype != np.uint8 and t.size and (t.min() < 0 or t.max() > 255):
                bad = np.unique(t[(t < 0) | (t > 255)])[:10].tolist()
                raise InputError(f"TRUTH file {str(truth_path)!r} holds values {bad!r}; truth masks hold 0-255 values")
            codes = t.astype(np.uint16) * np.uint16(3) + pc
            hist += np.bincount(codes.ravel(), minlength=768).reshape(256, 3)
    present = {int(v) for v in np.flatnonzero(hist.sum(axis=1))}
    convention = _resolve(present, truth_values, truth_path)
    cm = np.zeros((2, 2), np.int64)
    for value, cls in TRUTH_CONVENTIONS[convention].items():
        if cls is not None:
            cm[cls] += hist[value, :2]
    ignored = int(hist.sum() - cm.sum())
    return ScoreResult(_as_given(pred_src), _as_given(truth_src), convention, binary_metrics(cm), ignored)


def format_table(result: ScoreResult) -> str:
    """The metrics as a small text table."""
    m = result.metrics
    rows = [("F1^c", m.f1), ("IoU^c", m.iou), ("Kappa", m.kappa), ("Precision", m.precision),
            ("Recall", m.recall), ("OA", m.oa)]
    lines = [f"pred:  {result.pred}", f"truth: {result.truth} (values {_LABELS[result.truth_values]})",
             f"{'metric':<10} {'value':>8}"]
    lines += [f"{name:<10} {value:>8.4f}" for name, value in rows]
    lines.append(f"pixels: {m.n} counted, {result.ignored} ignored (TP {m.tp}, FP {m.fp}, FN {m.fn}, TN {m.tn})")
    return "\n".join(lines)
