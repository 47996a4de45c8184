"""Change comparators: CACH on DINOv2 features, the classical fitted ones, and the mask-level systems.

Pure torch / numpy; may import the rest of ``kernels``, never ``pipeline``, dask or file I/O.
"""
