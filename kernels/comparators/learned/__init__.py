"""The learned tile comparators on the DINOv2 taps: CACH's change rule and DCVA.

They run on tiles inside the tile predictor (:mod:`s2c_batch.kernels.predictors.tile`);
the networks themselves (DINOv2, the CACH head) live in :mod:`s2c_batch.kernels.models`.
"""
