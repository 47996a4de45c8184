"""The stages of one ``s2c-batch run``: plan, fingerprint, co-registration, fit, graph, tasks, Otsu, COGs, resume.

May import ``pipeline.output``, ``pipeline.cluster``, ``pipeline.products``,
``pipeline.inputs``, ``pipeline.storage`` and the shared modules; never ``learn``,
``batch``, ``synth`` or ``cli``.
"""
