"""Test-only hooks, inert unless their environment variable is set (the watchdog's tests set it).

``S2C_TEST_STALL=FILE``: FILE holds ``ROW COL TIMES``. The write task of block
``(ROW, COL)`` then blocks the first ``TIMES`` times it runs (each run claims
``FILE.<n>``), as the stalled Zarr write of issue 19 did: only a worker restart
ends it (:mod:`~s2c_batch.pipeline.cluster.watchdog`), or a test that creates
``FILE.release`` once it has done what it must while the block waits (stop the
output's endpoint, look at the scheduler's tasks); the task then goes on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STALL_ENV = "S2C_TEST_STALL"

#: Suffix of the file that ends every stall of ``S2C_TEST_STALL=FILE``.
RELEASE_SUFFIX = ".release"


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
