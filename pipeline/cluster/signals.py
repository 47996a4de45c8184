"""Stop cleanly on SIGTERM: it becomes a KeyboardInterrupt, like Ctrl-C.

Schedulers (systemd, Slurm, Kubernetes) stop jobs with SIGTERM; treating it as
an interrupt lets a run or batch cancel its tasks, mark ``run.json`` failed and
stay resumable.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
