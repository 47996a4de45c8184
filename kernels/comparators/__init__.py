"""Change comparators, one subpackage per family, and the registry of their names.

- :mod:`.registry`: every ``model.comparator`` with its family, support, needs, fit and
  builders (the entry type in :mod:`.spec`); the only place that compares comparator names.
- :mod:`.classical`: CVA, PCA-KMeans, IR-MAD, fitted from scene statistics (numpy only).
- :mod:`.learned`: the tile comparators on the DINOv2 taps (CACH's rule, DCVA).
- :mod:`.mask_level`: the paper's systems that decide on object masks.
- :mod:`.base` (support, the protocols of a run's comparator), :mod:`.options` (the config
  sections).

Pure torch / numpy on what they are given: no model, predictor or config (the predictors
bring the models and the comparators together), never ``pipeline``, dask or file I/O.
"""
