"""OSCD's labelled cities as a LEVIR-CD-layout dataset, for ``s2c-batch eval``.

``s2c-batch eval`` reads a folder of same-named RGB images ``A/`` (t1), ``B/`` (t2) and
``label/`` (change). OSCD (Daudt et al. 2018) ships, for each city, RGB quicklooks of the
two dates on the 10 m grid (``pair/img1.png``, ``pair/img2.png``, uint8) and the change
map ``cm/<city>-cm.tif`` (1 = no change, 2 = change) on the same grid. This writes, for
every city that has both:

    DST/A/<city>.png = pair/img1.png (bands 1-3)
    DST/B/<city>.png = pair/img2.png
    DST/label/<city>.png = 255 where the change map is 2, else 0

    python scripts/oscd_levir_layout.py ../shared/data/ChenHongruixuan_ChangeDetectionRepository/Dataset/OSCD DST

The quicklooks are RGB renderings, not the 13 Sentinel-2 bands: scores on them are not
those of the 4-band runs in docs/comparators.md (``bench/comparators.py``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from s2c_batch.pipeline.learn.dataset import write_png

IMAGES = "Onera Satellite Change Detection dataset - Images"
LABELS = "Onera Satellite Change Detection dataset - Train Labels"


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return np.asarray(src.read())


def convert(oscd: Path, dst: Path) -> list[str]:
    """Write the LEVIR-layout folder; returns the cities written, in name order."""
    written = []
    for labels in sorted((oscd / LABELS).iterdir()):
        cm = labels / "cm" / f"{labels.name}-cm.tif"
        pair = oscd / IMAGES / labels.name / "pair"
        if not cm.is_file() or not (pair / "img1.png").is_file() or not (pair / "img2.png").is_file():
            continue
        change = _read(cm)[0]
        t1, t2 = _read(pair / "img1.png")[:3], _read(pair / "img2.png")[:3]
        if not (t1.shape[1:] == t2.shape[1:] == change.shape):
            raise SystemExit(f"{labels.name}: quicklooks {t1.shape[1:]}, {t2.shape[1:]} and change map "
                             f"{change.shape} differ in size")
        for folder, data in (("A", t1), ("B", t2), ("label", np.where(change == 2, 255, 0).astype(np.uint8))):
            (dst / folder).mkdir(parents=True, exist_ok=True)
            write_png(dst / folder / f"{labels.name}.png", data)
        written.append(labels.name)
    return written


def main() -> None:
    """Command line: ``OSCD_FOLDER DST``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("oscd", type=Path, help="the OSCD folder (holding the Images and Train Labels folders)")
    parser.add_argument("dst", type=Path, help="the dataset folder to write")
    args = parser.parse_args()
    cities = convert(args.oscd, args.dst)
    print(f"{len(cities)} cities: {', '.join(cities)} -> {args.dst}")


if __name__ == "__main__":
    main()
