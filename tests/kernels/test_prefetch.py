"""Overlapping the next item's work with the caller's handling of the current one."""

from __future__ import annotations

import threading
import time

import pytest

from s2c_batch.kernels.prefetch import prefetched


@pytest.mark.parametrize("enabled", [True, False])
def test_prefetched__yields_every_item_in_order(enabled: bool) -> None:
    items = list(range(7))
    assert list(prefetched(lambda x: 10 * x, items, enabled=enabled)) == [(i, 10 * i) for i in items]
    assert list(prefetched(lambda x: x, [], enabled=enabled)) == []


def test_prefetched__next_item_runs_while_the_caller_holds_the_current_one() -> None:
    started = [threading.Event() for _ in range(3)]

    def fn(i: int) -> int:
        started[i].set()
        return i

    for i, _ in prefetched(fn, [0, 1, 2]):
        if i + 1 < 3:
            # Without overlap fn(i + 1) only starts after this body: the wait would time out.
            assert started[i + 1].wait(timeout=10), f"fn({i + 1}) did not start while item {i} was handled"


def test_prefetched__disabled_runs_in_the_callers_thread() -> None:
    threads = [t for _, t in prefetched(lambda _: threading.current_thread(), [0, 1, 2], enabled=False)]
    assert threads == [threading.current_thread()] * 3


def test_prefetched__calls_fn_one_at_a_time_in_order() -> None:
    calls: list[int] = []
    running = threading.Lock()

    def fn(i: int) -> int:
        assert running.acquire(blocking=False), "two calls of fn overlapped"
        calls.append(i)
        running.release()
        return i

    for _ in prefetched(fn, list(range(20))):
        pass
    assert calls == list(range(20))


def test_prefetched__error_reaches_the_caller_at_its_item_and_stops_the_work() -> None:
    calls: list[int] = []

    def fn(i: int) -> int:
        calls.append(i)
        if i == 2:
            raise ValueError("bad batch 2")
        return i

    got = []
    with pytest.raises(ValueError, match="bad batch 2"):
        for _, r in prefetched(fn, list(range(6))):
            got.append(r)
    assert got == [0, 1]
    assert calls == [0, 1, 2]


def test_prefetched__one_thread_per_process_for_every_call() -> None:
    """The model always runs in the same thread (per-thread CUDA graphs are built once)."""
    names = {t.ident for n in (3, 1, 2) for _, t in prefetched(lambda _: threading.current_thread(), list(range(n)))}
    assert len(names) == 1 and threading.current_thread().ident not in names


def test_prefetched__stopping_early_waits_for_the_work_in_flight() -> None:
    started, done = threading.Event(), []

    def fn(i: int) -> int:
        if i == 1:
            started.set()
            time.sleep(0.3)
            done.append(i)
        return i

    gen = prefetched(fn, [0, 1, 2])
    next(gen)
    assert started.wait(timeout=10)  # fn(1) is running in the background
    gen.close()  # what an exception in the caller's loop body does
    assert done == [1]  # close returned only after fn(1) had finished
