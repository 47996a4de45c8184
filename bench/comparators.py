"""The classical comparators on the labelled real scenes in ../shared/data: F1^c and Kappa per city.

OSCD (Daudt et al. 2018; the five labelled cities in ../shared/data): the 10 m bands
B02, B03, B04, B08 of each date stacked into a VRT (``s2c-batch stack``), input scale
10000, scored against ``cm/<city>-cm.tif`` (1 = no change, 2 = change). The
PCA-KMeans test pairs of Celik (2009) have no labels: for them the script prints how
often the comparators agree with each other.

Every run goes through the whole pipeline (``run_change_detection``) on one LocalCluster.
Prints one JSON line per (scene, comparator) and a summary line per comparator.

    python bench/comparators.py                      # everything (a few minutes on 2 cores)
    python bench/comparators.py --cities bercy,paris --skip-celik
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from s2c_batch.pipeline.cluster.connect import connect
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.inputs.vrt import stack_bands
from s2c_batch.pipeline.learn.score import score_rasters
from s2c_batch.pipeline.run.runner import run_change_detection

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ChenHongruixuan_ChangeDetectionRepository" / "Dataset"
OSCD = DATA / "OSCD"
IMAGES = OSCD / "Onera Satellite Change Detection dataset - Images"
LABELS = OSCD / "Onera Satellite Change Detection dataset - Train Labels"
CITIES = ("aguasclaras", "bercy", "bordeaux", "paris", "rennes")

#: name -> --set overrides (on the packaged ``cva`` config): the settings each method is meant with.
METHODS: dict[str, list[str]] = {
    "cva (fixed 0.5)": ["model.comparator=cva"],
    "cva standardised, Otsu": ["model.comparator=cva", "model.standardize=scene", "model.threshold=otsu"],
    "pca_kmeans": ["model.comparator=pca_kmeans"],
    "pca_kmeans standardised": ["model.comparator=pca_kmeans", "model.standardize=scene"],
    "irmad, Otsu": ["model.comparator=irmad", "model.threshold=otsu"],
}
COMMON = ["output.stac=false", "output.quicklook=false", "output.polygons=false", "tiling.block_size=512"]


def oscd_pair(city: str, work: Path) -> tuple[Path, Path, Path]:
    """The city's 4-band VRTs and its truth."""
    vrts = []
    for d in (1, 2):
        files = [next((IMAGES / city / f"imgs_{d}").glob(f"*_{band}.tif")) for band in ("B02", "B03", "B04", "B08")]
        vrts.append(stack_bands(files, work / f"{city}_t{d}.vrt"))
    return vrts[0], vrts[1], next((LABELS / city / "cm").glob("*-cm.tif"))


def celik_pair(name: str, work: Path) -> tuple[Path, Path]:
    """A PCA-KMeans test pair (PNG, no georeferencing) as GeoTIFFs on a nominal 1 m grid."""
    out = []
    for year in ("1986", "1992"):
        with rasterio.open(DATA / "PCAKmeans" / f"{name}_{year}.png") as src:
            rgb = src.read([1, 2, 3])
        path = work / f"{name}_{year}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[2], height=rgb.shape[1], count=3,
                           dtype="uint8", crs="EPSG:32631", transform=Affine(1, 0, 500000, 0, -1, 5000000)) as dst:
            dst.write(rgb)
        out.append(path)
    return out[0], out[1]


def run_one(t1: Path, t2: Path, out: Path, sets: list[str], scheduler: str) -> tuple[float, dict]:
    cfg = load_config("cva", [*COMMON, *sets])
    t0 = time.perf_counter()
    run_change_detection(t1, t2, out, cfg, scheduler=scheduler, overwrite=True, progress=False)
    return time.perf_counter() - t0, json.loads((out / "run.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cities", default=",".join(CITIES))
    parser.add_argument("--skip-celik", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"the real imagery is not there: {DATA}")
    scores: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp, connect(None, load_config("cva").cluster) as client:
        work = Path(tmp)
        address = str(client.scheduler_info()["address"])
        for city in [c for c in args.cities.split(",") if c]:
            t1, t2, truth = oscd_pair(city, work)
            for method, sets in METHODS.items():
                out = work / f"{city}-{len(scores[method])}-{method.split()[0]}"
                seconds, doc = run_one(t1, t2, out, ["input.bands=[1,2,3,4]", "input.scale=10000", *sets], address)
                m = score_rasters(out / "change_mask.tif", truth, truth_values="12").metrics
                scores[method].append((m.f1, m.kappa))
                print(json.dumps({"scene": f"oscd/{city}", "method": method, "f1": round(m.f1, 4),
                                  "kappa": round(m.kappa, 4), "precision": round(m.precision, 4),
                                  "recall": round(m.recall, 4), "threshold": doc.get("threshold"),
                                  "seconds": round(seconds, 1)}), flush=True)
        for method, rows in scores.items():
            if rows:
                f1, kappa = np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])
                print(json.dumps({"summary": method, "cities": len(rows), "mean_f1": round(float(f1), 4),
                                  "mean_kappa": round(float(kappa), 4)}), flush=True)
        if not args.skip_celik:
            for name in ("burn", "conifer", "forest"):
                t1, t2 = celik_pair(name, work)
                masks = {}
                for method in ("cva standardised, Otsu", "pca_kmeans", "irmad, Otsu"):
                    out = work / f"{name}-{method.split()[0]}"
                    run_one(t1, t2, out, METHODS[method], address)
                    with rasterio.open(out / "change_mask.tif") as src:
                        masks[method] = src.read(1) == 1
                names = list(masks)
                agree = {f"{a} / {b}": round(float((masks[a] == masks[b]).mean()), 4)
                         for i, a in enumerate(names) for b in names[i + 1 :]}
                print(json.dumps({"scene": f"celik/{name}", "changed_fraction": {k: round(float(v.mean()), 4)
                                                                                 for k, v in masks.items()},
                                  "agreement": agree}), flush=True)


if __name__ == "__main__":
    main()
