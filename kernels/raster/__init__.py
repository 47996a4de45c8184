"""Raster maths of one block: the tile grid, overlap blending, product encodings, regions, quicklook pixels.

Pure numpy (no torch at import), never ``pipeline``, dask or file I/O.
"""
