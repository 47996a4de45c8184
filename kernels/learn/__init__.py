"""Training maths: the CACH loss and the paper's change metrics.

Pure torch / numpy; never ``pipeline``, dask or file I/O.
"""
