"""The networks and their weights: DINOv2's taps, the CACH head, the SegEarth-OV3 identifier, the proposers.

Each model is tensor-in, tensor-out, with its own checkpoint loading; :mod:`.build` makes
them from the ``model`` config section (seeded random weights with ``random_init``).
Comparators (:mod:`s2c_batch.kernels.comparators`) and predictors
(:mod:`s2c_batch.kernels.predictors`) use the models; the models import neither.
Pure torch; never ``pipeline``, dask or file I/O beyond reading local checkpoints.
"""
