"""The path of one ``s2c-batch run``: plan, cluster, Dask graph, worker tasks, Zarr store, COGs, run.json.

May import ``pipeline.inputs``, ``pipeline.products`` and the shared modules;
never ``learn``, ``batch``, ``synth`` or ``cli``.
"""
