"""The Dask cluster of a run or batch: connecting, supervising block tasks, the watchdog, signals, the report.

May import the shared modules and ``kernels``; never ``run``, ``output``, ``products``,
``learn``, ``batch``, ``synth`` or ``cli``.
"""
