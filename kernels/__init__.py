"""Pure torch / numpy kernels of s2c-batch: no dask, no scene files.

Submodules are imported on use (``from s2c_batch.kernels import tiling``) so
that importing the package does not import torch.
"""
