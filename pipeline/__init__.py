"""Everything of s2c-batch that knows Dask, files, CRS and the CLI."""
