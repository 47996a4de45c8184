"""Stack single-band rasters into one multi-band GDAL VRT (no pixels are copied).

Sentinel-2 products such as OSCD ship one GeoTIFF per band. ``s2c-batch stack
t1.vrt B04.tif B03.tif B02.tif`` writes a VRT whose bands are those files in that
order, which ``s2c-batch run`` then reads like any multi-band raster (select
them with ``input.bands``, default ``[1, 2, 3]``). Band files may be URLs
(``s3://``, ``http(s)://``, ...): the VRT names them by their GDAL ``/vsi...`` path,
and a run reads them with its ``storage`` section.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

from s2c_batch.pipeline.config import StorageConfig
from s2c_batch.pipeline.errors import InputError, OutputError
from s2c_batch.pipeline.inputs.remote import open_raster, resolve_storage
from s2c_batch.pipeline.inputs.remote_errors import remote_input_error
from s2c_batch.pipeline.inputs.source import Source

_GDAL_TYPES = {
    "uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "float32": "Float32", "float64": "Float64",
}


def stack_bands(files: Sequence[str | os.PathLike[str] | Source], out: str | os.PathLike[str],
                storage: StorageConfig | None = None) -> Path:
    """Write a VRT whose band i is band 1 of ``files[i]``.

    Args:
        files: single- or multi-band rasters on one grid (band 1 of each is used):
            local paths, URLs or ``/vsi...`` paths.
        out: the ``.vrt`` path to write.
        storage: how remote band files are reached (the ``storage`` config section).

    Returns:
        The VRT path.

    Raises:
        InputError: a file is missing or unreadable, or the files differ in
            CRS, transform, shape or dtype.
    """
    if not files:
        raise InputError("stack needs at least one band file")
    sources = [Source.parse(f) for f in files]
    metas = []
    if any(f.remote for f in sources):
        storage = resolve_storage(storage or StorageConfig())
    for f in sources:
        if not f.remote and not f.path.is_file():
            raise InputError(f"band file {str(f)!r} does not exist; check the path")
        try:
            with open_raster(f, storage) as src:
                metas.append((src.crs, src.transform, src.height, src.width, src.dtypes[0], src.nodata,
                              src.block_shapes[0]))
        except rasterio.errors.RasterioIOError as exc:
            if f.remote:
                raise remote_input_error("band file", f.text, exc) from exc
            raise InputError(f"band file {str(f)!r} cannot be opened as a raster ({exc})") from exc
    crs, transform, h, w, dtype, _, _ = metas[0]
    for f, (c2, t2, h2, w2, d2, _, _) in zip(sources[1:], metas[1:], strict=True):
        if (c2, h2, w2, d2) != (crs, h, w, dtype) or not t2.almost_equals(transform):
            raise InputError(
                f"band file {str(f)!r} is not on the grid of {str(sources[0])!r} "
                f"({c2}, {(h2, w2)}, {d2} vs {crs}, {(h, w)}, {dtype}); stack bands of one resolution "
                "or resample them first (gdalwarp -tr)"
            )
    gt = transform.to_gdal()
    bands = []
    for i, (f, meta) in enumerate(zip(sources, metas, strict=True), start=1):
        nodata = meta[5]
        by, bx = meta[6]
        nd = f"    <NoDataValue>{nodata!r}</NoDataValue>\n" if nodata is not None else ""
        bands.append(
            f'  <VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{i}">\n{nd}'
            "    <SimpleSource>\n"
            f'      <SourceFilename relativeToVRT="0">{escape(_source_name(f))}</SourceFilename>\n'
            "      <SourceBand>1</SourceBand>\n"
            f'      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" '
            f'DataType="{_GDAL_TYPES[dtype]}" BlockXSize="{bx}" BlockYSize="{by}"/>\n'
            f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
            f'      <DstRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
            "    </SimpleSource>\n"
            "  </VRTRasterBand>\n"
        )
    srs = f"  <SRS>{escape(crs.to_wkt())}</SRS>\n" if crs else ""
    xml = (
        f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}">\n{srs}'
        f"  <GeoTransform>{', '.join(repr(float(v)) for v in gt)}</GeoTransform>\n"
        + "".join(bands)
        + "</VRTDataset>\n"
    )
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(xml)
    except OSError as exc:
        raise OutputError(f"cannot write VRT {str(path)!r}: {exc}") from exc
    return path


def _source_name(source: Source) -> str:
    """How the VRT names a band file: a URL by its GDAL ``/vsi...`` path, a local file by its absolute path."""
    return source.gdal_path if source.remote else str(source.path.resolve())
