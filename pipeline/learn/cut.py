"""Cut a scene pair and its change truth into a LEVIR-layout dataset of PNG tiles.

Turns ``t1.tif``, ``t2.tif`` and ``truth.tif`` (0/1, e.g. from ``s2c-batch
synth``) into ``A/``, ``B/`` and ``label/`` folders of same-named ``tile``-pixel
PNGs, labels as 0/255 masks (the LEVIR-CD convention), so ``s2c-batch train``
and ``s2c-batch eval`` can read them. Tiles are cut on a grid from the top-left
corner; a partial last row or column is dropped. One tile is read at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from s2c_batch.pipeline.errors import InputError, OutputError
from s2c_batch.pipeline.learn.dataset import write_png


def cut_to_dataset(
    t1: str | os.PathLike[str],
    t2: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tile: int = 256,
    prefix: str = "",
) -> list[str]:
    """Write the full tiles of a pair into ``out/A``, ``out/B`` and ``out/label``.

    Args:
        t1: 3-band uint8 raster of the first date.
        t2: the same grid at the second date.
        truth: uint8 change truth, 0 unchanged, 1 changed.
        out: dataset folder (created; existing tiles of the same names are replaced).
        tile: tile side in pixels.
        prefix: prepended to the tile names ``<prefix><row>_<col>.png``.

    Returns:
        The tile names written (without suffix).

    Raises:
        InputError: a raster is missing or the three differ in size (exit 3).
        OutputError: the folders cannot be written (exit 4).
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    paths = [Path(t1), Path(t2), Path(truth)]
    for p in paths:
        if not p.is_file():
            raise InputError(f"{str(p)!r} does not exist; give the t1, t2 and truth rasters of a pair")
    folders = [Path(out) / sub for sub in ("A", "B", "label")]
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create dataset folders in {str(out)!r}: {exc}") from exc
    names: list[str] = []
    try:
        with rasterio.open(paths[0]) as d1, rasterio.open(paths[1]) as d2, rasterio.open(paths[2]) as dt:
            if not (d1.shape == d2.shape == dt.shape):
                raise InputError(
                    f"{paths[0].name}, {paths[1].name} and {paths[2].name} differ in size "
                    f"({d1.shape}, {d2.shape}, {dt.shape}); cut rasters of one grid"
                )
            for row in range(0, d1.height - tile + 1, tile):
                for col in range(0, d1.width - tile + 1, tile):
                    win = Window(col, row, tile, tile)
                    name = f"{prefix}{row:06d}_{col:06d}"
                    label = dt.read(1, window=win)
                    if label.max(initial=0) > 1:
                        raise InputError(
                            f"{paths[2].name} holds values other than 0 and 1 near row {row}, column {col}; "
                            "the truth must be a 0/1 change mask"
                        )
                    label = (label * 255).astype(np.uint8)
                    write_png(folders[0] / f"{name}.png", d1.read([1, 2, 3], window=win))
                    write_png(folders[1] / f"{name}.png", d2.read([1, 2, 3], window=win))
                    write_png(folders[2] / f"{name}.png", label[None])
                    names.append(name)
    except RasterioIOError as exc:
        raise InputError(f"cannot read the pair to cut: {exc}") from exc
    return names
