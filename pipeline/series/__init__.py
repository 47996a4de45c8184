"""A series of acquisitions of one place, night after night: ``s2c-batch series`` and a RUNS.yaml ``series:``.

Its pairs run as ``run`` does (each in its own folder, reused when complete); the series
products (first lasting change, change count, persistence), its STAC collection and its
record are made from the pairs' stores.

Built on ``pipeline.run`` and below (``products``, ``output``, ``inputs``, ``cluster``);
imported by ``batch`` and ``cli`` only. Never imports ``batch``, ``learn`` or ``synth``.
"""
