"""Many runs on one cluster: ``s2c-batch batch`` (a RUNS.yaml) and ``s2c-batch compare`` (comparators side by side).

Built on ``pipeline.run``; may import everything of the pipeline but ``cli``.
"""
