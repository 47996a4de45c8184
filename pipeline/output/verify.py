"""What ``complete`` promises, checked before ``run.json`` says so.

Every block of the plan is recorded in the ledger, the store carries the output grid
(shape, CRS, transform), and every product the run lists is there.
"""

from __future__ import annotations

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.errors import OutputError
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output import store
from s2c_batch.pipeline.output.layout import STORE
from s2c_batch.pipeline.output.location import Ledger, Location


def verify_products(out: Location, pair: ScenePair, plan: TilePlan, ledger: Ledger, products: dict[str, str]) -> None:
    """Check what ``complete`` promises: every block written, georeferencing equal to t1's.

    Raises:
        OutputError: a block is missing or a product does not match the output grid.
    """
    missing = plan.n_blocks - len(ledger.done())
    if missing:
        raise OutputError(f"{missing} block(s) are not recorded as written; run again with --resume")
    store_path = out.child(STORE)
    ds = store.open_products(store_path)
    try:
        if ds.rio.shape != pair.grid.shape or ds.rio.crs != pair.grid.crs or \
                not ds.rio.transform().almost_equals(pair.grid.affine):
            raise OutputError(
                f"{store_path.url!r} does not carry the input's grid "
                f"({ds.rio.shape}, {ds.rio.crs}); rerun with --overwrite"
            )
    finally:
        ds.close()
    for product, path in products.items():
        if not out.exists(product):
            raise OutputError(f"product {product} was not written to {path!r}; run again with --resume")
