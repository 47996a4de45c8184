"""Where a run's products go: a local folder or an object-store prefix, its lock, ledger, Zarr store and run.json.

May import ``pipeline.inputs``, ``pipeline.storage`` and the shared modules; never ``run``,
``products``, ``cluster``, ``learn``, ``batch``, ``synth`` or ``cli``.
"""
