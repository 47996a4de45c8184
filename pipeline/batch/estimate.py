"""How long a plan takes on N workers, from costs measured by a calibration (:mod:`.calibrate`).

A run's wall time is modelled as what the calibration measured, unit by unit:

    wall = fixed + blocks + tail

- ``fixed``: opening the scenes, starting the cluster, loading the model on the workers,
  creating the store: measured once, independent of the scene's size.
- ``blocks``: the block tasks' work, ``pairs x s_per_pair + blocks x s_per_block``
  (tiled; untiled: ``megapixels x s_per_mpx + blocks x s_per_block``), spread over the
  workers' task threads: ``work / (N x threads)``; on GPU workers the tile tasks hold the
  one GPU, so never less than ``pairs x s_per_pair / N``. Plus half a block at the end,
  when the last blocks finish one by one and some workers wait.
- ``tail``: the COGs, the Otsu mask pass and the derived products, per megapixel of the
  scene (they read the whole store).

The per-unit costs are the tasks' own compute times from the scheduler's task stream, so
scheduling overhead, transfers and idle workers inside the calibration count only through
the fixed and tail parts; the simulation in ``bench/province.py`` measures that the
scheduler's and the client's share per block stays small up to 10,000 blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Costs:
    """What one config costs on one kind of worker, measured by a calibration.

    Attributes:
        s_per_pair: seconds of tile task per tile pair (0 on the untiled path).
        s_per_block: seconds per block of the other block tasks (read, pieces, write; untiled:
            the part of a block task that does not grow with its pixels is not separated, 0).
        s_per_mpx: untiled: seconds of block task per megapixel (0 on the tiled path).
        fixed_s: open, cluster start, model load and store creation.
        tail_s_per_mpx: COGs, the mask pass and derived products, per megapixel.
        threads: task threads per worker.
        gpu: the workers have a GPU resource (the tile tasks take it, one at a time).
        workers: the workers the calibration ran on.
    """

    s_per_pair: float
    s_per_block: float
    s_per_mpx: float
    fixed_s: float
    tail_s_per_mpx: float
    threads: int
    gpu: bool
    workers: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data, rounded for JSON."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Workload:
    """What a plan asks of the workers: blocks, tile pairs computed, megapixels of the output grid."""

    blocks: int
    pairs: int
    megapixels: float


@dataclass(frozen=True)
class Estimate:
    """The estimated wall time of a workload on ``workers`` workers, and its parts."""

    workers: int
    wall_s: float
    fixed_s: float
    blocks_s: float
    tail_s: float
    work_s: float

    @property
    def worker_hours(self) -> float:
        """Hours of workers held (N x wall): what a night of N GPUs costs."""
        return self.workers * self.wall_s / 3600.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON, with ``wall`` as ``H:MM:SS``."""
        return {
            "workers": self.workers, "wall_s": round(self.wall_s, 1), "wall": hms(self.wall_s),
            "worker_hours": round(self.worker_hours, 3), "fixed_s": round(self.fixed_s, 1),
            "blocks_s": round(self.blocks_s, 1), "tail_s": round(self.tail_s, 1),
            "block_work_hours": round(self.work_s / 3600.0, 3),
        }


def hms(seconds: float) -> str:
    """``H:MM:SS`` of a duration.

    Example:
        >>> hms(3725.4)
        '1:02:05'
    """
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def block_work(costs: Costs, work: Workload) -> float:
    """Seconds of block tasks the workload needs, all workers together."""
    return work.pairs * costs.s_per_pair + work.blocks * costs.s_per_block + work.megapixels * costs.s_per_mpx


def estimate(costs: Costs, work: Workload, workers: int, *, with_fixed: bool = True) -> Estimate:
    """The wall time of ``work`` on ``workers`` workers (see the module docstring).

    Args:
        costs: the calibration's costs.
        work: the plan's blocks, pairs and megapixels.
        workers: workers (GPUs) to estimate for.
        with_fixed: count the fixed costs (a batch pays them once, not per run).

    Example:
        >>> c = Costs(s_per_pair=0.15, s_per_block=0.5, s_per_mpx=0, fixed_s=30, tail_s_per_mpx=0.01,
        ...           threads=2, gpu=True, workers=1)
        >>> round(estimate(c, Workload(blocks=100, pairs=12100, megapixels=1600), 8).wall_s)
        282
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    total = block_work(costs, work)
    lanes = workers * max(1, costs.threads)
    blocks_s = total / lanes
    if costs.gpu:
        blocks_s = max(blocks_s, work.pairs * costs.s_per_pair / workers)
    if work.blocks:
        per_block = total / work.blocks
        blocks_s = max(blocks_s, per_block) + (0.5 * per_block if work.blocks > workers else 0.0)
    tail_s = work.megapixels * costs.tail_s_per_mpx
    fixed = costs.fixed_s if with_fixed else 0.0
    return Estimate(workers=workers, wall_s=fixed + blocks_s + tail_s, fixed_s=fixed, blocks_s=blocks_s,
                    tail_s=tail_s, work_s=total)
