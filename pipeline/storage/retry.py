"""The retry policy of obstore's clients, from the ``storage`` section.

``storage.max_retry`` retries of one request, ``storage.retry_delay`` apart at first
and growing; one request is retried for at most :data:`RETRY_TIMEOUT_S` seconds.
gcsfs has its own retries, bounded by the same ``storage.max_retry``
(:func:`~s2c_batch.pipeline.storage.gcs.filesystem`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from s2c_batch.pipeline.config import StorageConfig

#: Longest time one request is retried (``storage.max_retry`` retries, ``storage.retry_delay`` apart at first).
RETRY_TIMEOUT_S = 60


def retry_config(storage: StorageConfig) -> Any:
    """The ``retry_config`` of an obstore store: ``storage.max_retry`` retries, backoff from ``retry_delay``."""
    backoff = timedelta(seconds=max(storage.retry_delay, 0.01))
    return {"max_retries": storage.max_retry, "retry_timeout": timedelta(seconds=RETRY_TIMEOUT_S),
            "backoff": {"init_backoff": backoff, "max_backoff": 10 * backoff, "base": 2}}
