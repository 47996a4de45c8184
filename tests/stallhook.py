"""A test-only stall of a block's write task, installed on Dask workers by the tests that need it.

s2c-batch itself never calls this: a worker started with ``--preload tests/stallhook.py``
(``RealCluster.start(..., preload=STALL_HOOK)``) runs :func:`dask_setup`, which wraps the
two block tasks (:func:`~s2c_batch.pipeline.run.worker.write_block` and
:func:`~s2c_batch.pipeline.run.untiled.compare_block`) in that worker process only. A
task names its function by module and name, so the worker's copy of the graph calls the
wrapper.

``S2C_TEST_STALL=FILE`` (in the workers' environment): FILE holds ``ROW COL TIMES``. The
task of block ``(ROW, COL)`` then blocks the first ``TIMES`` times it runs (each run
claims ``FILE.<n>``), as the stalled Zarr write of issue 19 did: only a worker restart
ends it (:mod:`~s2c_batch.pipeline.cluster.watchdog`), or a test that creates
``FILE.release`` once it has done what it must while the block waits (stop the output's
endpoint, look at the scheduler's tasks); the task then goes on. Without the variable
the wrapper does nothing.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STALL_ENV = "S2C_TEST_STALL"

#: Suffix of the file that ends every stall of ``S2C_TEST_STALL=FILE``.
RELEASE_SUFFIX = ".release"

#: This file, for ``dask worker --preload``.
STALL_HOOK = Path(__file__).resolve()


def stall_if_asked(index: tuple[int, int]) -> None:
    """Block when ``S2C_TEST_STALL`` asks it of block ``index`` and a stall is left, until released."""
    spec = os.environ.get(STALL_ENV)
    if not spec:
        return
    row, col, times = (int(v) for v in Path(spec).read_text().split())
    if (row, col) != tuple(index):
        return
    for n in range(times):
        try:
            os.close(os.open(f"{spec}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        release = Path(spec + RELEASE_SUFFIX)
        while not release.exists():  # a stalled write: returns only when a test releases it
            time.sleep(0.05)
        return


def _stalling(task: Callable[..., Any]) -> Callable[..., Any]:
    """``task`` (whose first argument is a job with an ``index``), stalled first when asked."""
    if getattr(task, "stalls", False):
        return task

    @functools.wraps(task)
    def stalled(job: Any, *args: Any) -> Any:
        stall_if_asked(job.index)
        return task(job, *args)

    stalled.stalls = True  # type: ignore[attr-defined]
    return stalled


def install() -> None:
    """Wrap the block tasks of this process so that they stall when ``S2C_TEST_STALL`` asks."""
    from s2c_batch.pipeline.run import untiled, worker

    worker.write_block = _stalling(worker.write_block)  # type: ignore[assignment]
    untiled.compare_block = _stalling(untiled.compare_block)  # type: ignore[assignment]


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: install the stall in the worker process."""
    install()
