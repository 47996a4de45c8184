"""s2c-batch: Seg2Change change detection for huge raster pairs on Dask.

The code lives in the top-level folders ``pipeline/`` and ``kernels/`` (see docs/architecture.md);
this folder only links them under the import name ``s2c_batch`` so that editable installs are
plain paths that static tools (mypy, editors, import-linter) can follow.
"""
