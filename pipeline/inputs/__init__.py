"""Input scenes: open and validate a pair, read windows, stack bands, acquisition times, remote inputs.

May import ``pipeline.config``, ``pipeline.errors`` and ``kernels``; nothing else of the pipeline.
"""
