"""Training and evaluation: datasets on disk, backbone features, the CACH recipe, metrics, scoring, ``eval``.

May import the shared modules, ``kernels``, ``pipeline.inputs`` (the opener of local and
remote rasters), ``pipeline.run.fingerprint`` (file hashes) and, for ``eval``, the stages
of a run it shares (``pipeline.run.fit``: the fit settings and DCVA's fit;
``pipeline.run.worker``: a predictor with a run's comparator; ``pipeline.run.threshold``:
Otsu's level); never ``batch``, ``synth`` or ``cli``.
"""
