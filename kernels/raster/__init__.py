"""Raster maths of one block: the tile grid, overlap blending, product encodings, regions, quicklook pixels.

Also the maths of derived products computed block by block: from/to transition counts,
the minimum mapping unit, and the per-pixel series products (first lasting change,
change count, persistence).

Pure numpy (no torch at import), never ``pipeline``, dask or file I/O.
"""
