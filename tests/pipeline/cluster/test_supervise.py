"""collect_blocks on a real cluster: deterministic errors at once, others retried, reports as blocks finish."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest
from distributed import Client

from s2c_batch.pipeline.cluster.supervise import collect_blocks
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.run.worker import BlockReport

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import test modules


def _block(attempts: str, index: tuple[int, int], failures: int, error: type[Exception]) -> BlockReport:
    """Fail ``failures`` times (counted in the file ``attempts``), then report the block written."""
    with open(attempts, "a") as f:
        f.write("x")
    if len(Path(attempts).read_text()) <= failures:
        raise error(f"attempt {len(Path(attempts).read_text())} of block {index} failed")
    return BlockReport(index=index, valid_pixels=1, write_s=0.0, worker="w")


@pytest.mark.cluster
def test_collect_blocks__input_error_is_raised_at_once_and_others_are_retried(
    tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    with Client(dask_cluster.address, timeout="20s", set_as_default=False) as client:  # as in a batch's threads
        flaky = client.submit(_block, str(tmp_path / "flaky"), (0, 0), 1, RuntimeError, pure=False)
        damaged = client.submit(_block, str(tmp_path / "damaged"), (0, 1), 99, InputError, pure=False)
        done: list[BlockReport] = []
        with pytest.raises(InputError, match=r"attempt 1 of block \(0, 1\) failed"):
            collect_blocks(client, [damaged], retries=2, on_done=done.append)
        reports = collect_blocks(client, [flaky], retries=2, on_done=done.append)
    assert (tmp_path / "damaged").read_text() == "x", "an input error was retried"
    assert (tmp_path / "flaky").read_text() == "xx"
    assert [r.index for r in reports] == [r.index for r in done] == [(0, 0)]


@pytest.mark.cluster
def test_collect_blocks__unexpected_error_is_raised_once_retries_are_spent(
    tmp_path: Path, dask_cluster  # noqa: ANN001
) -> None:
    with Client(dask_cluster.address, timeout="20s") as client:
        broken = client.submit(_block, str(tmp_path / "broken"), (2, 3), 99, RuntimeError, pure=False)
        with pytest.raises(RuntimeError, match=r"attempt 3 of block \(2, 3\) failed"):
            collect_blocks(client, [broken], retries=2, on_done=lambda r: None)
    assert (tmp_path / "broken").read_text() == "xxx"
