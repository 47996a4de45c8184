"""obstore clients built from the ``storage`` section: the retry policy, and the store of a ``gs://`` bucket.

GDAL reads the pixels of remote inputs; obstore answers what GDAL does not expose (a
``gs://`` object's generation, ETag and size: :mod:`~s2c_batch.pipeline.inputs.identity`)
and writes an ``s3://`` ``--out`` (:mod:`~s2c_batch.pipeline.output.location`; a ``gs://`` one is
written through gcsfs, whose JSON API the emulators serve: :mod:`~s2c_batch.pipeline.storage.gcs`).

A store is built on the machine that uses it, from the (secret-free) ``storage`` section
and that machine's own credentials. For ``gs://`` obstore finds them itself:
``GOOGLE_SERVICE_ACCOUNT`` or ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account or
``gcloud auth application-default login`` file), else the instance's service account.
``storage.anonymous`` sends unsigned reads (public buckets; obstore signs every write
regardless), ``storage.gs_endpoint`` (or the client's ``STORAGE_EMULATOR_HOST``) names
another endpoint, such as an emulator.
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


def gcs_store(bucket: str, storage: StorageConfig, prefix: str = "") -> Any:
    """An ``obstore.store.GCSStore`` of ``gs://bucket/prefix``, with this machine's Google credentials."""
    from obstore.store import GCSStore

    config: dict[str, Any] = {}
    if storage.gs_endpoint:
        config["base_url"] = storage.gs_endpoint.rstrip("/")
    if storage.anonymous:
        config["skip_signature"] = True
    return GCSStore(bucket, prefix=prefix or None, config=config,  # type: ignore[arg-type]
                    retry_config=retry_config(storage), client_options={"allow_http": storage.allow_http})
