"""The names of what a run writes under its ``--out`` (a folder or an object-store prefix).

::

    change.zarr/          the Zarr v3 store (written block by block)
    change_prob.tif ...   COGs (appear only when complete)
    changes.parquet       change polygons, quicklook.png, stac-item.json: derived products
    run.json              status, fingerprint, config, inputs, timings
    .s2c/lock             pid and host of the run writing here
    .s2c/fit.json         a fitted comparator's parameters (resume predicts with them)
    .s2c/coregistration.json  the co-registration QA and the shift applied (resume reuses them)

plus the block ledger (``.s2c/blocks.done`` in a folder, ``.s2c/blocks/ROW_COL`` objects on
object storage). Only these names are ever removed by ``--overwrite``.
"""

STATE_DIR = ".s2c"
RUN_JSON = "run.json"
STORE = "change.zarr"
FIT_FILE = "fit.json"
COREG_FILE = "coregistration.json"
LOCK = f"{STATE_DIR}/lock"
PRODUCT_FILES = ("change_prob.tif", "change_mask.tif", "class_t1.tif", "class_t2.tif")

#: The derived products (:mod:`~s2c_batch.pipeline.products.extras`).
POLYGONS_FILE = "changes.parquet"
QUICKLOOK_FILE = "quicklook.png"
STAC_FILE = "stac-item.json"
DERIVED_FILES = (POLYGONS_FILE, QUICKLOOK_FILE, STAC_FILE)

#: The block ledger: a file of ``row col`` lines in a folder, one object per block on object storage.
LEDGER_FILE = f"{STATE_DIR}/blocks.done"
LEDGER_PREFIX = f"{STATE_DIR}/blocks"

#: What a prefix's write probe writes and removes.
PROBE = f"{STATE_DIR}/.write-test"
