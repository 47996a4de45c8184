"""What the stages of one run share: its options, and the context made once its output is held.

:class:`RunOptions` are the keywords of :func:`~s2c_batch.pipeline.run.runner.run_change_detection`
(where the run computes, what it does with a previous run, what it shows). A
:class:`RunContext` is made once the scenes are open and validated, the plan made and
``--out`` held; every stage of the runner takes it instead of a dozen arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from s2c_batch.kernels.raster.tiling import TilePlan
from s2c_batch.pipeline.config import Config
from s2c_batch.pipeline.inputs.scene import ScenePair
from s2c_batch.pipeline.output.layout import STORE
from s2c_batch.pipeline.output.location import Ledger, Location
from s2c_batch.pipeline.output.runlog import RunLog
from s2c_batch.pipeline.run.plan import products_for


@dataclass(frozen=True)
class RunOptions:
    """How one run goes, besides its scenes, output and config.

    Attributes:
        scheduler: address of a running Dask scheduler; ``None`` = a LocalCluster.
        resume: finish a previous run with the same fingerprint, reusing its blocks.
        overwrite: replace a previous run.
        bbox: AOI ``(minx, miny, maxx, maxy)`` in t1's CRS.
        progress: show a progress bar on stderr.
        report: save Dask's performance report of the block computation to this HTML file.
        torch_threads: torch intra-op threads on each CPU worker; ``None`` = the worker's
            share of this machine's cores on a LocalCluster the run starts, and Dask's
            default (one) on a ``scheduler``'s workers.
    """

    scheduler: str | None = None
    resume: bool = False
    overwrite: bool = False
    bbox: tuple[float, float, float, float] | None = None
    progress: bool = True
    report: str | os.PathLike[str] | None = None
    torch_threads: int | None = None


@dataclass
class RunContext:
    """One run, once its scenes are open and its output held.

    Attributes:
        pair: the validated scenes and the output grid.
        plan: the block and tile plan.
        cfg: the resolved config.
        out: the output location (held: locked by this run).
        options: how the run goes.
        checkpoints: ``model.*_checkpoint`` key -> the file's hash.
        fingerprint: what identifies the run (:func:`~s2c_batch.pipeline.run.fingerprint.fingerprint`).
        runlog: ``run.json`` and the stage timings.
        ledger: the blocks written so far.
    """

    pair: ScenePair
    plan: TilePlan
    cfg: Config
    out: Location
    options: RunOptions
    checkpoints: dict[str, str]
    fingerprint: str
    runlog: RunLog
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = self.out.ledger()

    @property
    def store(self) -> Location:
        """The run's Zarr store (``change.zarr``)."""
        return self.out.child(STORE)

    @property
    def products(self) -> tuple[str, ...]:
        """The product arrays the run writes."""
        return products_for(self.cfg)
