"""Synthetic scene pairs and series with planted changes, and ``s2c-batch demo`` built on them.

May import ``pipeline.run`` and ``pipeline.learn`` (scoring); never ``batch`` or ``cli``.
"""
