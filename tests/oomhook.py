"""A test-only CUDA out-of-memory error in the tile predictor, installed on Dask workers by the tests that need it.

s2c-batch never calls this: a worker started with ``--preload tests/oomhook.py`` runs
:func:`dask_setup`, which wraps :func:`~s2c_batch.pipeline.run.worker.make_predictor` in that
worker process only, so the predictor its model plugin builds raises
``torch.OutOfMemoryError`` (the type a CUDA allocation failure raises) when:

- a batch holds more than ``MAX`` tile pairs (a GPU too small for ``model.batch_size``), or
- it is one of the first ``POISON`` calls of the cluster (each claims ``FILE.p<n>``):
  every batch size fails, as on a worker whose device memory is gone.

``S2C_TEST_OOM=FILE`` (in the workers' environment), FILE holding ``MAX POISON``. Without the
variable the wrapper does nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

OOM_ENV = "S2C_TEST_OOM"

#: This file, for ``dask worker --preload``.
OOM_HOOK = Path(__file__).resolve()


def _oom_now(n_pairs: int) -> bool:
    spec = os.environ.get(OOM_ENV)
    if not spec:
        return False
    most, poison = (int(v) for v in Path(spec).read_text().split())
    for n in range(poison):
        try:
            os.close(os.open(f"{spec}.p{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return True
    return n_pairs > most


class OOMPredictor:
    """A tile predictor that runs out of "device memory" as :data:`OOM_ENV` says; otherwise ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _check(self, n_pairs: int) -> None:
        if _oom_now(n_pairs):
            import torch

            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {n_pairs} GiB (test hook)")

    def predict(self, t1: Any, t2: Any, **kw: Any) -> Any:
        self._check(len(t1))
        return self.inner.predict(t1, t2, **kw)

    def predict_raw(self, t1: Any, t2: Any, scale: float, **kw: Any) -> Any:
        self._check(len(t1))
        on_device = getattr(self.inner, "predict_raw", None)
        if on_device is not None:
            return on_device(t1, t2, scale, **kw)
        from s2c_batch.kernels.prediction import to_unit

        return self.inner.predict(to_unit(t1, scale), to_unit(t2, scale), **kw)


def _oom_predictors(make: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(make, "ooms", False):
        return make

    @functools.wraps(make)
    def wrapped(*args: Any, **kw: Any) -> Any:
        return OOMPredictor(make(*args, **kw))

    wrapped.ooms = True  # type: ignore[attr-defined]
    return wrapped


def install() -> None:
    """Make this process's predictors run out of memory when :data:`OOM_ENV` asks."""
    from s2c_batch.pipeline.run import worker

    worker.make_predictor = _oom_predictors(worker.make_predictor)  # type: ignore[assignment]


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: install the wrapper in the worker process."""
    install()
