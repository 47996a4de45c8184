"""Products derived from the finished store and COGs: STAC Item, quicklook, change polygons.

Called by :mod:`s2c_batch.pipeline.run` after the COGs are written and before the
run is verified and marked ``complete``; each piece is switched by an
``output.*`` config key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.scene import ScenePair


def write_extras(client: Any, out_dir: Path, pair: ScenePair, cfg: Config, run: dict[str, Any],
                 products: dict[str, str]) -> dict[str, str]:
    """Write the derived products; returns product name -> path of what was written."""
    return {}
