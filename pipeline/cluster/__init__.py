"""The Dask cluster of a run or batch: connecting, supervising block tasks, progress and the watchdog, signals.

May import the shared modules and ``kernels``; never ``run``, ``output``, ``products``,
``learn``, ``batch``, ``synth`` or ``cli``.
"""
