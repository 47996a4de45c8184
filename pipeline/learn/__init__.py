"""Training and evaluation: datasets on disk, backbone features, the CACH recipe, metrics, scoring.

May import the shared modules, ``kernels`` and ``pipeline.run.runlog`` (file hashes);
never ``batch``, ``synth`` or ``cli``.
"""
