"""Raster maths of one block: tiles, blending, encodings, regions, quicklook pixels, masks, shifts.

Pure numpy, scipy and scikit-image (no torch at import), never ``pipeline``, dask or file I/O.
"""
