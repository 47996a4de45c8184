"""The networks and their weights: DINOv2's taps, the CACH head, the SegEarth-OV3 identifier, the proposers.

Each model is tensor-in, tensor-out, with its own builders and checkpoint loading
(architecture sizes, the original key layouts); the predictors build the models a config
names (:mod:`s2c_batch.kernels.predictors.models`). Comparators
(:mod:`s2c_batch.kernels.comparators`) decide on what the models produce. The models import
no comparator, predictor or config (a contract in setup.cfg).
Pure torch; never ``pipeline``, dask or file I/O beyond reading local checkpoints.
"""
