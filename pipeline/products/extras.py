"""Products derived from the finished store and COGs: STAC Item, quicklook, change polygons, from/to summary.

Called by :mod:`s2c_batch.pipeline.run.runner` after the COGs are written and before the
run is verified and marked ``complete``; each piece is switched by an
``output.*`` config key. The polygon task of a block starts with the blocks
(:func:`start_extras`) and runs as soon as that block is written. Then, in
order: ``changes.parquet`` (its block tasks gathered and dissolved),
``quicklook.png`` (decimated reads in this process), and ``stac-item.json``,
which lists every file written before it. Each carries the run's provenance
(version, config hash, fingerprint, checkpoint hashes, input names): the STAC
item in its properties, the GeoParquet file in its metadata
(``s2c:provenance``), the PNG in text chunks. A derived file whose switch is off
is removed, so a folder never holds one left over from an earlier run with
other settings.

With class maps, the from/to counts of each block start with the blocks too
(:mod:`~s2c_batch.pipeline.products.transitions`); :func:`summarise` adds them up
into the ``transitions`` and ``summary`` of ``run.json`` (and so of the STAC item).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.layout import POLYGONS_FILE, QUICKLOOK_FILE, STAC_FILE, STORE
from s2c_batch.pipeline.output.locate import as_location
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.store import StorePath
from s2c_batch.pipeline.products.polygons import polygon_frame, save_polygons, submit_vectorise
from s2c_batch.pipeline.products.preview import PreviewPiece, assemble, panel_shape
from s2c_batch.pipeline.products.quicklook import write_quicklook
from s2c_batch.pipeline.products.stac import write_stac_item
from s2c_batch.pipeline.products.transitions import gather_transitions, submit_transitions

log = logging.getLogger(__name__)



def class_names(cfg: Config) -> tuple[str, ...] | None:
    """The vocabulary's class names when the run writes class maps, else ``None``."""
    if cfg.model.identifier == "none":
        return None
    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary

    return load_vocabulary(cfg.model.vocab).class_names


def target_indexes(cfg: Config) -> tuple[int, ...]:
    """The indexes of the vocabulary's target classes (``model.targets``, else its ``# targets:`` line)."""
    if cfg.model.identifier == "none":
        return ()
    from s2c_batch.kernels.models.identifier.vocab import load_vocabulary

    vocab = load_vocabulary(cfg.model.vocab)
    return tuple((vocab.with_targets(cfg.model.targets) if cfg.model.targets else vocab).targets)


@dataclass
class PendingExtras:
    """The derived-product tasks started with the blocks (``None`` when switched off or without class maps).

    The quicklook's scene panels are not among them: read in a task on a worker,
    the decimated scene reads made the tiny benchmark's whole run about 15%
    slower (likely the worker's fixed 64 MB GDAL cache re-decoding tiles).
    """

    polygons: list[Any] | None = None
    transitions: list[Any] | None = None

    def cancel(self, client: Any) -> None:
        """Cancel what is still running (the run failed or was interrupted)."""
        for futures in (self.polygons, self.transitions):
            if futures:
                client.cancel(futures)


def start_extras(client: Any, store_path: StorePath, pair: ScenePair, cfg: Config,
                 after: Mapping[tuple[int, int], Any]) -> PendingExtras:
    """Submit the work that can run while the blocks are predicted.

    Args:
        client: the run's ``distributed.Client``.
        store_path: the run's ``change.zarr`` (a folder, or an object-store location).
        pair: the scene pair and output grid.
        cfg: the run's config.
        after: block index -> future of its write task; blocks not named are
            already in the store (resume).
    """
    pending = PendingExtras()
    if cfg.output.polygons:
        pending.polygons = submit_vectorise(client, store_path, pair.grid, block=cfg.tiling.block_size,
                                            class_names=class_names(cfg), retries=cfg.cluster.retries,
                                            after=after)
    names = class_names(cfg)
    if names is not None:
        pending.transitions = submit_transitions(client, store_path, pair.grid, block=cfg.tiling.block_size,
                                                 n_classes=len(names), retries=cfg.cluster.retries, after=after)
    return pending


def summarise(client: Any, pending: PendingExtras, pair: ScenePair, cfg: Config) -> dict[str, Any]:
    """The ``run.json`` fields of the from/to summary: ``transitions`` and ``summary`` (nothing without class maps).

    Args:
        client: the run's ``distributed.Client``.
        pending: what :func:`start_extras` started (its counting tasks).
        pair: the scene pair and output grid.
        cfg: the run's config.
    """
    names = class_names(cfg)
    if names is None or pending.transitions is None:
        return {}
    matrix = gather_transitions(client, pending.transitions, names, pair.grid)
    return {"transitions": matrix.to_json(), "summary": matrix.summary(target_indexes(cfg))}


def write_extras(client: Any, out_dir: Location, pair: ScenePair, cfg: Config, run: dict[str, Any],
                 products: dict[str, str], pending: PendingExtras | None = None,
                 previews: Sequence[PreviewPiece] = ()) -> dict[str, str]:
    """Write the derived products; returns product name -> path (or URL) of what was written.

    On object storage each file is built on local scratch disk and uploaded
    (:meth:`~s2c_batch.pipeline.output.location.Location.staged`), and the quicklook
    reads the COGs' overviews from there by range requests.

    Args:
        client: the run's ``distributed.Client`` (polygon tasks run on it).
        out_dir: the run's folder or object-store location.
        pair: the scene pair and output grid.
        cfg: the run's config (``output.polygons``, ``output.quicklook``, ``output.stac``).
        run: the run record so far (version, fingerprint, config hash, inputs).
        products: what the run wrote so far (COGs and ``change.zarr``).
        pending: what :func:`start_extras` started (``None`` = do everything now).
        previews: the quicklook's scene pixels the block tasks kept; used when they
            cover the whole panel (:func:`~s2c_batch.pipeline.products.preview.assemble`).
    """
    out = as_location(out_dir)
    names = class_names(cfg)
    written: dict[str, str] = {}
    _remove_disabled(out, cfg)
    prov = provenance(pair, run)
    if cfg.output.polygons:
        frame = polygon_frame(client, out.child(STORE), pair.grid, block=cfg.tiling.block_size,
                              class_names=names, retries=cfg.cluster.retries,
                              futures=pending.polygons if pending else None)
        with out.staged(POLYGONS_FILE, what="change polygons") as tmp:
            save_polygons(frame, tmp, prov)
        log.info("%d change polygons -> %s", len(frame), out.href(POLYGONS_FILE))
        written[POLYGONS_FILE] = str(out.href(POLYGONS_FILE))
    if cfg.output.quicklook:
        titles = _titles(pair)
        where = write_quicklook(out, pair, block=cfg.tiling.block_size, class_names=names, titles=titles,
                                provenance=prov, scenes=assemble(previews, panel_shape(pair.grid)))
        written[QUICKLOOK_FILE] = str(where)
    if cfg.output.stac:
        where = write_stac_item(out, pair, run, {**products, **written})
        written[STAC_FILE] = str(where)
    return written


def provenance(pair: ScenePair, run: dict[str, Any]) -> dict[str, Any]:
    """What made the products: package version, config hash, fingerprint, checkpoint hashes, inputs."""
    return {
        "version": run.get("version"),
        "config_hash": run.get("config_hash"),
        "fingerprint": run.get("fingerprint"),
        "checkpoints": dict(run.get("checkpoints") or {}),
        "inputs": [pair.t1.raster.name, pair.t2.raster.name],
    }


def _remove_disabled(out: Location, cfg: Config) -> None:
    switches = {POLYGONS_FILE: cfg.output.polygons, QUICKLOOK_FILE: cfg.output.quicklook,
                STAC_FILE: cfg.output.stac}
    for name, enabled in switches.items():
        if not enabled:
            out.delete(name)


def _titles(pair: ScenePair) -> Sequence[str]:
    from s2c_batch.pipeline.inputs.acquisition import acquisition_datetime

    labels = []
    for label, source in (("t1", pair.t1), ("t2", pair.t2)):
        when = acquisition_datetime(source.path, source.storage)
        labels.append(f"{label} {when:%Y-%m-%d}" if when else f"{label} {source.raster.name}")
    return (*labels, "change")
