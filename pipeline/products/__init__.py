"""Products derived from a finished run: STAC Item, quicklook, change polygons, changed area.

May import ``pipeline.inputs``, ``pipeline.run`` (the store) and the shared modules;
never ``learn``, ``batch``, ``synth`` or ``cli``.
"""
