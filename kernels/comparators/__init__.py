"""Change comparators: per tile pair, a change probability (CACH on DINOv2 features, CVA).

Pure torch / numpy; may import the rest of ``kernels``, never ``pipeline``, dask or file I/O.
"""
