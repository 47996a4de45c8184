"""``s2c-batch batch``: many scene pairs of a ``RUNS.yaml`` on one cluster, resumable.

Built on ``pipeline.run``; may import everything of the pipeline but ``cli``.
"""
