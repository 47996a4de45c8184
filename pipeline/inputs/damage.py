"""A pixel read that fails inside a block task: transient, or a damaged file?

A scene can open fine and still hold a tile whose compressed bytes are garbage
(a partial copy, bit rot). GDAL then fails the read of every window that
touches that tile, with its decoder's complaint chained under rasterio's
generic ``Read failed``. :func:`read_failure` reads the window again, one
internal block of one band at a time: when some block fails again the file is
damaged, and the result is an :class:`~s2c_batch.pipeline.errors.InputError`
(exit 3) naming the file, the band, the pixels of the bad block and GDAL's
messages, which Dask must not retry. When every block reads fine the failure
was transient (a network filesystem hiccup) and the original error is returned
for Dask to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.errors import InputError

#: Reads spent looking for the damaged blocks of one failed window.
MAX_PROBES = 4096


def gdal_messages(exc: BaseException) -> list[str]:
    """GDAL's own messages chained under a rasterio error, the first cause first."""
    chain: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur.args[2]) if type(cur).__name__.startswith("CPLE_") and len(cur.args) == 3 else str(cur)
        if text and "See previous exception" not in text and text not in chain:
            chain.append(text)
        cur = cur.__cause__ or cur.__context__
    return chain[::-1]


def damaged_blocks(dataset: Any, bands: Sequence[int], window: Window) -> list[tuple[int, Window]]:
    """``(band, block window)`` of each internal block of ``dataset`` in ``window`` that fails to read.

    Args:
        dataset: an open rasterio dataset (a file, or a WarpedVRT).
        bands: 1-based bands to probe.
        window: pixels of ``dataset`` whose blocks are probed.
    """
    bad: list[tuple[int, Window]] = []
    probes = 0
    for band in bands:
        bh, bw = dataset.block_shapes[band - 1]
        for r in range(window.row // bh * bh, window.row_stop, bh):
            for c in range(window.col // bw * bw, window.col_stop, bw):
                block = Window(r, c, min(bh, dataset.height - r), min(bw, dataset.width - c))
                probes += 1
                if probes > MAX_PROBES:
                    return bad
                try:
                    dataset.read(band, window=rasterio.windows.Window(c, r, block.width, block.height))
                except RasterioError:
                    bad.append((band, block))
    return bad


def read_failure(path: str, dataset: Any, bands: Sequence[int], window: Window,
                 exc: BaseException) -> BaseException:
    """What a failed read of ``window`` should raise: an input error when the damage reproduces.

    Args:
        path: the scene file, for the message.
        dataset: a fresh handle on what was read (the file, or its WarpedVRT).
        bands: the 1-based bands that were read.
        window: the pixels that were read, in ``dataset``'s grid.
        exc: the error of the failed read.

    Returns:
        An :class:`InputError` naming file, band, pixels and GDAL's message, or ``exc``
        itself when every block reads now (a transient failure, worth a retry).
    """
    bad = damaged_blocks(dataset, bands, window)
    if not bad:
        return exc
    block = bad[0][1]
    in_block = sorted({b for b, w in bad if w == block})
    others = len({w for _, w in bad}) - 1
    more = f" and {others} more block(s) of this window" if others else ""
    gdal = "; ".join(m.rstrip(".") for m in gdal_messages(exc)) or str(exc)
    which = f"band{'s' if len(in_block) > 1 else ''} {', '.join(map(str, in_block))}"
    return InputError(
        f"cannot read {path!r}: {which}, pixels rows {block.row}:{block.row_stop}, "
        f"cols {block.col}:{block.col_stop}{more} (reading rows {window.row}:{window.row_stop}, "
        f"cols {window.col}:{window.col_stop}): {gdal}. The file is damaged: re-download or re-copy it; "
        f"`gdalinfo -checksum {path}` finds such tiles"
    )
