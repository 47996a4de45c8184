"""Raster maths of one block: tiles, blending, encodings, regions, quicklook pixels, masks, shifts.

Also the maths of derived products computed block by block: from/to transition counts,
the minimum mapping unit, and the per-pixel series products (first lasting change,
change count, persistence).

Pure numpy, scipy and scikit-image (no torch at import), never ``pipeline``, dask or file I/O.
"""
