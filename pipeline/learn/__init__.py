"""Training and evaluation: datasets on disk, backbone features, the CACH recipe, metrics, scoring.

May import the shared modules, ``kernels``, ``pipeline.run.runlog`` (file hashes) and
``pipeline.inputs.remote`` (the opener of local and remote rasters);
never ``batch``, ``synth`` or ``cli``.
"""
