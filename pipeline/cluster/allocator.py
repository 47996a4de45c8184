"""Let a model worker reuse freed memory instead of mapping every large allocation afresh.

Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the
operating system quickly. Setting any glibc threshold also freezes glibc's
*mmap* threshold at its 128 KiB floor. Every larger allocation then gets its
own ``mmap``, and the kernel has to fault in and zero its pages, then unmap them
when the block is freed. That covers each activation a torch model allocates
on the CPU and each tile batch on the host. On the 2-core CI-class VM, the tiny
config's model took 411 ms per tile pair under that setting and 253 ms without
it, with system time doubled.

:func:`reuse_freed_memory` sets the two thresholds back near where glibc's own
dynamic rule would take them (mmap threshold 32 MiB, trim threshold 64 MiB).
:class:`~s2c_batch.pipeline.run.worker.PredictorPlugin` calls it on every worker
that holds a torch model, whether a LocalCluster or ``dask worker`` started it.
A worker keeps at most about the trim threshold of freed memory; allocations of
32 MiB and more are still mapped and unmapped each time. The user's explicit
``MALLOC_MMAP_THRESHOLD_`` is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's dynamic rule pairs with it


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (``mallopt`` with these parameters), else ``None``."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Args:
        mmap_threshold: allocations of at least this many bytes get their own mapping.
        trim_threshold: freed memory at the top of the heap beyond this many bytes
            goes back to the operating system.

    Returns:
        True when the thresholds were set. False without glibc, or when the user set
        ``MALLOC_MMAP_THRESHOLD_`` (their choice stands).
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)))
    ok = bool(libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold))) and ok
    if ok:
        log.debug("malloc: mmap threshold %d B, trim threshold %d B", mmap_threshold, trim_threshold)
    return ok


def is_mapped_alone(nbytes: int) -> bool:
    """Whether ``malloc(nbytes)`` gets a mapping of its own under the current settings (glibc only).

    Reads the ``IS_MMAPPED`` bit of the chunk header; for tests and diagnostics.

    Raises:
        OSError: the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        raise OSError("is_mapped_alone needs glibc")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    ptr = libc.malloc(nbytes)
    if not ptr:
        raise MemoryError(nbytes)
    try:
        header = ctypes.c_size_t.from_address(ptr - ctypes.sizeof(ctypes.c_size_t)).value
        return bool(header & 0x2)
    finally:
        libc.free(ptr)
