"""Input scenes: one parsed Source per name; open and validate a pair, masks, read windows, stack bands, remote inputs.

May import ``pipeline.storage``, ``pipeline.config``, ``pipeline.errors`` and ``kernels``;
nothing else of the pipeline.
"""
