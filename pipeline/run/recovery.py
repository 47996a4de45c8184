"""What an interrupted or failed run left in ``--out``, and what ``--resume`` may reuse of it.

A run can stop anywhere: before ``run.json`` exists; with ``run.json`` and no
store; with the store created and no block recorded; with some blocks recorded;
with every block recorded and the COGs missing, partial or left as temporaries;
before the derived products; or after a crash that lost data the ledger had
recorded (the ledger is fsynced, shards are not). A resumed run decides from
the disk alone (:func:`prepare_resume`):

- the previous run is the one ``run.json`` describes or, when ``run.json`` is
  gone, the one whose fingerprint the store carries (:func:`previous_fingerprint`);
  a run of another fingerprint is refused when it left products, else replaced
  (:func:`resumes`: a run that failed on a damaged input left none);
- the store is reused only when it opens with this run's fingerprint, products,
  shards and grid (:func:`~s2c_batch.pipeline.output.store.store_problem`); otherwise
  it is removed, created afresh, and no block is reused;
- a block is reused only when the ledger records it and the shard of every product
  its task writes decodes (with Otsu, all but ``change_mask``, which a later pass
  writes; :func:`~s2c_batch.pipeline.output.store.block_problem`); the ledger is
  rewritten with exactly those blocks, and the others are computed again from no
  shard (zarr reads a shard before writing it: a torn one would fail the write);
- a kept store loses its consolidated metadata (that of a run that had completed)
  until the resumed run is complete;
- COGs and derived products are always written again from the store, and the
  temporary files of an interrupted write are removed (:func:`remove_temporaries`).

The decisions are the same for a folder and an ``s3://`` or ``gs://`` prefix, made from
its files or objects through :class:`~s2c_batch.pipeline.output.location.Location`
(the ledger of one object per block on object storage; an upload leaves no temporary).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import zarr

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.errors import OutputExistsError
from s2c_batch.pipeline.inputs.scene import Grid, ScenePair, open_pair
from s2c_batch.pipeline.inputs.source import Source
from s2c_batch.pipeline.output import lock, store
from s2c_batch.pipeline.output.layout import DERIVED_FILES, PRODUCT_FILES, STORE
from s2c_batch.pipeline.output.location import Location
from s2c_batch.pipeline.output.runlog import read_record
from s2c_batch.pipeline.run import coregister
from s2c_batch.pipeline.run.fingerprint import checkpoint_paths, fingerprint, hash_path
from s2c_batch.pipeline.run.plan import products_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumption:
    """What a resumed run keeps.

    Attributes:
        store_kept: the store is reused (else it was removed and must be created).
        reuse: blocks recorded and verified: not computed again.
        dropped: recorded blocks that are computed again, with the reason.
        store_problem: why the store was not kept (``None`` when kept or absent).
    """

    store_kept: bool
    reuse: frozenset[tuple[int, int]] = frozenset()
    dropped: dict[tuple[int, int], str] = field(default_factory=dict)
    store_problem: str | None = None


def previous_fingerprint(out: Location) -> str | None:
    """Fingerprint of the run held in ``out``: ``run.json``'s, else the store's attributes."""
    record = read_record(out)
    if record is not None and record.get("fingerprint"):
        return str(record["fingerprint"])
    try:
        value = zarr.open_group(out.zarr_store(STORE), mode="r").attrs.get("fingerprint")
    except Exception:  # no store, or one that does not open: nothing to resume from
        return None
    return str(value) if value else None


def resumes(out: Location, fingerprint: str) -> bool:
    """Whether ``--resume`` continues the run held in ``out`` (``False``: nothing to continue).

    Raises:
        OutputExistsError: ``out`` holds products of a run with another fingerprint.
    """
    previous = previous_fingerprint(out)
    if previous is None:
        return False
    if previous != fingerprint:
        if lock.holds_products(out):
            raise OutputExistsError(
                f"--out {out.url!r} holds a run with another fingerprint (inputs, config, "
                "checkpoints or version changed); pass --overwrite to replace it"
            )
        log.info("resume: %s holds no product of the other run; starting afresh", out.href())
        return False
    return True


#: What a run does with what its ``out`` holds (:func:`decide_mode`).
Mode = Literal["fresh", "resume", "overwrite", "skip"]


def decide_mode(t1: Source, t2: Source, out: Location, cfg: Config, *, who: str, fix: str,
                bbox: tuple[float, float, float, float] | None = None, overwrite: bool = False,
                hasher: Callable[[str], str] = hash_path) -> tuple[Mode, ScenePair]:
    """Fresh, resume, overwrite or skip, from the ``run.json`` (else the store) at ``out``: what ``batch`` decides.

    - nothing there: fresh (overwrite when ``overwrite`` and a run is there that left no fingerprint);
    - the same fingerprint, ``complete`` and every product it lists still there: skip;
    - the same fingerprint otherwise (``running``, ``failed``, a product gone): resume;
    - another fingerprint: overwrite when ``overwrite``, else refused.

    Args:
        t1: earlier scene.
        t2: later scene.
        out: the run's output location.
        cfg: the run's config.
        who: the run, for the refusal's message (``run '31UFS'``).
        fix: how to allow replacing it, for the refusal's message.
        bbox: AOI in t1's CRS.
        overwrite: replace a run of another fingerprint.
        hasher: hashes a checkpoint path (a batch caches them).

    Returns:
        The mode and the opened pair.

    Raises:
        InputError: a scene is unusable (exit 3).
        OutputExistsError: ``out`` holds a run with another fingerprint and ``overwrite`` is
            false (exit 4).
    """
    pair = open_pair(t1, t2, cfg.input, bbox=bbox, storage=cfg.storage)
    previous = previous_fingerprint(out)  # run.json's, else the store's
    if previous is None:
        return ("overwrite" if overwrite and lock.has_run(out) else "fresh"), pair
    checkpoints = {k: hasher(p) for k, p in checkpoint_paths(cfg).items()}
    current = fingerprint(pair, cfg, checkpoints)
    shift = coregister.applied(coregister.saved_coregistration(out, current))
    if shift is not None:  # input.coregister: global: the shift applied is part of the fingerprint
        current = fingerprint(coregister.shifted_pair(pair, shift, cfg.input.resampling), cfg, checkpoints)
    if previous == current:
        record = read_record(out) or {}
        products = record.get("products") or {}
        complete = record.get("status") == "complete" and STORE in products and \
            all(out.exists(name) for name in products)
        return ("skip" if complete else "resume"), pair
    if overwrite:
        return "overwrite", pair
    raise OutputExistsError(
        f"{who}: out {out.url!r} holds a run made from other inputs, config, checkpoints or version; {fix}"
    )


def prepare_resume(out: Location, cfg: Config, *, fingerprint: str, grid: Grid, plan: TilePlan) -> Resumption:
    """Verify what the previous run left, remove what cannot be trusted, and say what is kept.

    Args:
        out: the output folder (locked by this run).
        cfg: the run's config (its products, tiling, threshold).
        fingerprint: this run's fingerprint (equal to the previous run's).
        grid: the output grid.
        plan: the block plan.

    Returns:
        The store's fate and the blocks to reuse; the ledger then records exactly them.

    Raises:
        OutputError: the ledger cannot be rewritten.
    """
    ledger, store_path = out.ledger(), out.child(STORE)
    out.remove_temporaries()
    for product in (*PRODUCT_FILES, *DERIVED_FILES):
        out.delete(product)
    store_there = out.exists(STORE)
    products = products_for(cfg)
    # What a block task writes: with Otsu, change_mask comes later, from a pass over every block.
    written = tuple(p for p in products if not (cfg.model.otsu and p == "change_mask"))
    shard, chunk = cfg.tiling.block_size, cfg.tiling.chunk_size
    problem = store.store_problem(store_path, grid, products, shard=shard, chunk=chunk,
                                  fingerprint=fingerprint) if store_there else "absent"
    if problem is not None:
        if problem != "absent":
            log.warning("resume: %s is not reused and is created again: %s", store_path.href(), problem)
        out.delete_prefix(STORE)
        ledger.rewrite(set())
        return Resumption(store_kept=False, store_problem=None if problem == "absent" else problem)
    store.unconsolidate(store_path)  # written again, so no longer complete until this run is
    blocks = plan_blocks(plan)
    reuse: set[tuple[int, int]] = set()
    dropped: dict[tuple[int, int], str] = {}
    for index in sorted(ledger.done()):
        if index not in blocks:
            dropped[index] = "not a block of this plan"
            continue
        why = store.block_problem(store_path, plan.block_at(*index).core, written)
        if why is None:
            reuse.add(index)
        else:
            dropped[index] = why
    for index, why in dropped.items():
        log.warning("resume: block %s is computed again: %s", index, why)
    # A shard left by a block not kept may be torn, and so may one of a later pass.
    store.remove_blocks(store_path, [plan.block_at(*i).core for i in sorted(plan_blocks(plan) - reuse)], products)
    later = tuple(p for p in products if p not in written)
    store.remove_blocks(store_path, [plan.block_at(*i).core for i in sorted(reuse)], later)
    ledger.rewrite(reuse)
    return Resumption(store_kept=True, reuse=frozenset(reuse), dropped=dropped)


def start_fresh(out: Location) -> Resumption:
    """Remove everything a previous run wrote here (a run that is not resumed)."""
    out.clear_products()
    out.remove_temporaries()
    for derived in DERIVED_FILES:
        out.delete(derived)
    return Resumption(store_kept=False)


def plan_blocks(plan: TilePlan) -> set[tuple[int, int]]:
    """Every block index of the plan."""
    nbi, nbj = plan.block_grid
    return {(i, j) for i in range(nbi) for j in range(nbj)}
