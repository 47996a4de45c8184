"""Cloud-Optimized GeoTIFFs built from the Zarr store, atomically.

GDAL's COG driver only copies (``CreateCopy``), and writing one from Dask
directly gives all-zero overviews (rioxarray #410). So each product is written
window by window into a temporary tiled GeoTIFF, copied to a temporary COG
(which builds the overviews from the complete raster), checked, and only then
renamed to its final name with ``os.replace``. A crash leaves no file under the
final name; temporary files are removed on any error.

For an ``--out`` on object storage the temporaries live on the machine's local scratch
disk (Dask's ``temporary-directory``, else the system's), and the checked COG is
uploaded (:meth:`~s2c_batch.pipeline.output.location.Location.place`; multipart or
resumable above 8 MiB), so the object appears only when its upload completes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError

from s2c_batch.kernels.raster.encode import NODATA
from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import OutputError, portable_errors
from s2c_batch.pipeline.inputs.scene import Grid, ScenePair
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.run.fingerprint import package_version

#: GDAL block cache (MB) while building a COG: fixed, so memory does not grow with the scene.
GDAL_CACHE_MB = 256

#: Free bytes under which a failed COG write is reported as a full disk.
FULL_DISK_BYTES = 1 << 20

#: The temporary tiled GeoTIFF is read once, by the COG copy: fast ZSTD level 1, not the
#: product's compression (deflate there took 4.6 s of a 16384 x 16384 product's 12.5 s).
TEMP_COMPRESSION = {"compress": "zstd", "zstd_level": 1}


@portable_errors
def write_cog(
    store_path: store.StorePath,
    name: str,
    out: str | os.PathLike[str] | Location,
    grid: Grid,
    *,
    window: int,
    compress: str = "deflate",
    compress_level: int | None = None,
    overview_resampling: str = "nearest",
    tags: Mapping[str, str] | None = None,
) -> Path | str:
    """Write product ``name`` of the store as a COG with overviews.

    Args:
        store_path: the ``change.zarr`` store.
        name: product array name; the COG is ``out/<name>.tif``.
        out: the run's output location (or folder).
        grid: the output grid (CRS, transform, shape).
        window: rows/cols copied per step (the block size: bounded memory).
        compress: COG compression.
        compress_level: its level (deflate, zstd); ``None`` = 1, the fastest.
        overview_resampling: resampling for the overviews.
        tags: GeoTIFF metadata tags (provenance).

    Returns:
        The final path, or the URL of the uploaded object.
    """
    location, key = as_location(out), f"{name}.tif"
    with location.workdir(key, prefix="s2c-cog-") as folder:  # beside the COG, or on local scratch disk
        local = folder / key
        tmp_tiff = local.with_name(f".{local.stem}.tiled.tmp.tif")
        tmp_cog = local.with_name(f".{local.stem}.cog.tmp.tif")
        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1,
            "dtype": "uint8", "crs": grid.crs, "transform": grid.affine, "nodata": NODATA,
            "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER", **TEMP_COMPRESSION,
        }
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(tmp_tiff, "w", **profile) as dst:
                for r in range(0, grid.height, window):
                    for c in range(0, grid.width, window):
                        win = Window(r, c, min(window, grid.height - r), min(window, grid.width - c))
                        arr = store.read_window(store_path, name, win)
                        dst.write(arr, 1, window=rasterio.windows.Window(c, r, win.width, win.height))
                if tags:
                    dst.update_tags(**tags)
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
                # Tiles (and overview tiles) are compressed on all cores: 2x faster on 2 cores.
                level = {"level": compress_level or 1} if compress in ("deflate", "zstd") else {}
                rasterio.shutil.copy(
                    tmp_tiff, tmp_cog, driver="COG", compress=compress.upper(), blocksize=512, **level,
                    overview_resampling=overview_resampling, overviews="AUTO", BIGTIFF="IF_SAFER",
                    NUM_THREADS="ALL_CPUS",
                )
            _check_cog(tmp_cog, grid)
            location.place(key, tmp_cog)  # a rename, or an upload whose error names --out and the COG's key
        except (rasterio.errors.RasterioError, CPLE_BaseError, OSError) as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(
                f"writing COG {str(location.href(key))!r} failed ({_reason(exc, folder)}); free space or fix the "
                "output folder, then run again with --resume"
            ) from exc
        finally:
            for tmp in (tmp_tiff, tmp_cog):
                tmp.unlink(missing_ok=True)
    return location.href(key)


def write_cogs(
    client: Any, store_path: store.StorePath, out: Location, pair: ScenePair, cfg: Config,
    products: Sequence[str], run: Mapping[str, Any],
) -> dict[str, str]:
    """Write every product's COG, one task each, tagged with the run's provenance.

    Args:
        client: the run's ``distributed.Client``.
        store_path: the run's ``change.zarr``.
        out: the run's folder or object-store prefix.
        pair: the scene pair and output grid.
        cfg: the run's config (``output.compress``, ``tiling.block_size``, ``cluster.retries``).
        products: the products to write (``change_prob``, ...).
        run: the run record so far (fingerprint, checkpoints, threshold).

    Returns:
        ``NAME.tif`` -> the written path or object URL.
    """
    tags = {
        "S2C_BATCH_VERSION": package_version(),
        "S2C_CONFIG_HASH": cfg.hash(),
        "S2C_FINGERPRINT": str(run.get("fingerprint")),
        "S2C_INPUTS": f"{pair.t1.raster.name},{pair.t2.raster.name}",
        "S2C_CHECKPOINTS": json.dumps(run.get("checkpoints", {}), sort_keys=True),
        "S2C_COMPARATOR": cfg.model.comparator,
        "S2C_THRESHOLD": json.dumps(run.get("threshold"), sort_keys=True),
    }
    futures = {
        name: client.submit(
            write_cog, store_path, name, out, pair.grid,
            window=cfg.tiling.block_size, compress=cfg.output.compress, compress_level=cfg.output.compress_level,
            overview_resampling=cfg.output.overview_resampling, tags=tags,
            pure=False, retries=cfg.cluster.retries,
        )
        for name in products
    }
    return {f"{name}.tif": str(fut.result()) for name, fut in futures.items()}


def _reason(exc: BaseException, folder: Path) -> str:
    """Why a COG write failed: a full disk, said plainly, or GDAL's message.

    GDAL does not always report a write that ran out of space: closing the
    temporary GeoTIFF can leave a truncated file that the COG copy then calls
    "not recognized as being in a supported file format".
    """
    try:
        st = os.statvfs(folder)
        if st.f_bavail * st.f_frsize < FULL_DISK_BYTES:
            return "No space left on device"
    except OSError:
        pass
    return str(exc)


def _check_cog(path: Path, grid: Grid) -> None:
    """The written file has the grid's shape, CRS and transform."""
    with rasterio.open(path) as src:
        if (src.height, src.width) != grid.shape or src.crs != grid.crs or \
                not src.transform.almost_equals(grid.affine):
            raise OutputError(f"COG {str(path)!r} does not match the output grid; not renamed")


def overview_factors(path: str | os.PathLike[str]) -> list[int]:
    """Overview decimation factors of band 1 of a raster."""
    with rasterio.open(path) as src:
        return list(src.overviews(1))

