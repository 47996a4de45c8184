"""Products derived from a finished run: STAC Item, quicklook, change polygons, changed area.

May import ``pipeline.output`` (the location, the store), ``pipeline.inputs`` and the
shared modules; never ``run``, ``cluster``, ``learn``, ``batch``, ``synth`` or ``cli``.
"""
