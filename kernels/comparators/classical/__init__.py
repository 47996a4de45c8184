"""The classical comparators: CVA, PCA-KMeans and IR-MAD, fitted to each scene from statistics.

Pure numpy / scipy (no torch at import): pointwise or neighbourhood comparators that run
on whole blocks (the untiled path) or on tiles beside the identifier. Each fitted
comparator is a small frozen dataclass; :mod:`.fitting` fits it from per-block
statistics (:mod:`.statistics`), :mod:`.common` holds the standardisation they share.
"""
