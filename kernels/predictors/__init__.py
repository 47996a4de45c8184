"""Tile predictors: the models of a config on a device, with all preprocessing, behind one interface.

:func:`.build.build_predictor` gives the predictor of a model config
(:class:`~s2c_batch.kernels.prediction.TilePredictor`): :mod:`.tile` for CACH, DCVA and the
classical comparators beside the identifier, :mod:`.masks` for the mask-level systems,
:mod:`.host` for a classical comparator alone (numpy, no torch). :mod:`.base`,
:mod:`.device` and :mod:`.preprocess` hold what they share; :mod:`.models` builds the models
a config names and :mod:`.parts` holds them for a predictor. Nothing else in ``kernels``
imports the predictors.
"""
