"""The output pixel grid, and a warp onto it: small picklable specs shared by the inputs.

:class:`Grid` is the grid every product is written on (t1's, or its ``--bbox`` part);
:class:`WarpSpec` says how a raster that is not on it (t2 under ``input.align: reproject``,
a mask on another grid, t2 corrected by ``input.coregister: global``) is read onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS


@dataclass(frozen=True)
class Grid:
    """The output pixel grid: CRS, affine transform and shape.

    Attributes:
        crs_wkt: CRS as WKT.
        transform: the six GDAL-order affine coefficients ``(a, b, c, d, e, f)``.
        height: rows.
        width: columns.
    """

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    height: int
    width: int

    @property
    def affine(self) -> Affine:
        """The grid's affine transform."""
        return Affine(*self.transform)

    @property
    def crs(self) -> CRS:
        """The grid's CRS."""
        return CRS.from_wkt(self.crs_wkt)

    @property
    def shape(self) -> tuple[int, int]:
        """Grid ``(height, width)``."""
        return (self.height, self.width)


@dataclass(frozen=True)
class WarpSpec:
    """Warp a source onto a target grid (``input.align: reproject``, ``input.coregister: global``).

    Attributes:
        crs_wkt: the target grid's CRS.
        transform: the target grid's transform; with ``shift_px`` it is t1's grid moved by
            the shift, so that t2's content lands where t1's is.
        height: rows of the target grid.
        width: columns of the target grid.
        resampling: a ``rasterio.enums.Resampling`` name.
        shift_px: the co-registration shift ``(dy, dx)`` applied, in output pixels (t2's
            content lies ``dy`` rows below and ``dx`` columns right of t1's), or ``None``.
    """

    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    height: int
    width: int
    resampling: str
    shift_px: tuple[float, float] | None = None
