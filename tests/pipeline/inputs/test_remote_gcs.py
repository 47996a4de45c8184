"""``gs://`` scenes on a real Google Cloud Storage emulator of 127.0.0.1 (fake-gcs-server).

GDAL reads them through ``/vsigs/`` at ``storage.gs_endpoint`` (here the client's
``STORAGE_EMULATOR_HOST``); their identity is the object's generation, ETag and size
(obstore's HEAD). Each failure is an input error (exit 3) naming the URL and the fix.
Every test uploads into its own bucket: GDAL remembers what it learnt about a URL.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio

from s2c_batch.pipeline.config import StorageConfig, load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs.identity import describe_input
from s2c_batch.pipeline.inputs.remote import open_raster
from s2c_batch.pipeline.inputs.scene import open_pair

from objectstore import GCSServer, closed_port, gcs_upload
from testutils import make_pair

CFG = load_config("cva", ["storage.allow_http=true", "storage.anonymous=true", "storage.max_retry=0"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_pair(tmp_path_factory.mktemp("pair"), 96, 128, seed=5)


def test_open_pair__gs_urls_equal_the_local_files(gcs_env: GCSServer, files: tuple[Path, Path]) -> None:
    urls = gcs_upload(gcs_env, {"in/t1.tif": files[0], "in/t2.tif": files[1]})
    remote = open_pair(urls["in/t1.tif"], urls["in/t2.tif"], CFG.input, storage=CFG.storage)
    assert remote.grid == open_pair(*files, CFG.input).grid
    assert remote.t1.storage is not None and remote.t1.storage.gs_endpoint == gcs_env.endpoint  # resolved here
    assert b"STORAGE_EMULATOR_HOST" not in pickle.dumps(remote)  # the tasks carry the value, not the variable
    with open_raster(urls["in/t2.tif"], remote.t2.storage) as src, rasterio.open(files[1]) as ref:
        window = ((40, 90), (7, 120))  # range reads of a window
        assert np.array_equal(src.read(window=window), ref.read(window=window))


def test_describe_input__gs_object_is_url_generation_etag_and_size_and_changes_when_replaced(
        gcs_env: GCSServer, files: tuple[Path, Path]) -> None:
    url = gcs_upload(gcs_env, {"t1.tif": files[0]})["t1.tif"]
    storage = StorageConfig(gs_endpoint=gcs_env.endpoint, allow_http=True, anonymous=True)
    first = describe_input(url, storage)
    assert first["path"] == url and first["size"] == files[0].stat().st_size
    assert first["etag"] and first["last_modified"] and first["generation"]
    bucket, key = url.removeprefix("gs://").split("/", 1)
    written = gcs_env.put(bucket, key, files[1].read_bytes())  # same URL, other content
    again = describe_input(url, storage)
    assert again["generation"] == written["generation"] != first["generation"]
    assert again["etag"] != first["etag"] and again["size"] == files[1].stat().st_size


def test_describe_input__missing_gs_object_is_exit_3_naming_the_url_and_endpoint(gcs_env: GCSServer) -> None:
    storage = StorageConfig(gs_endpoint=gcs_env.endpoint, allow_http=True, anonymous=True, max_retry=0)
    with pytest.raises(InputError, match=r"'gs://no-such-bucket-s2c/t1.tif' cannot be described \(HEAD: not found\).*"
                                         r"storage.gs_endpoint \(or STORAGE_EMULATOR_HOST\)") as info:
        describe_input("gs://no-such-bucket-s2c/t1.tif", storage)
    assert info.value.exit_code == 3


def test_describe_input__no_google_credentials_is_exit_3_naming_them(gcs_env: GCSServer) -> None:
    """Not anonymous and no credentials: the metadata server (here a closed port of 127.0.0.1) does not answer."""
    storage = StorageConfig(gs_endpoint=gcs_env.endpoint, allow_http=True, max_retry=0, retry_delay=0)
    with pytest.raises(InputError, match=r"'gs://b/t1.tif' cannot be described .*GOOGLE_APPLICATION_CREDENTIALS"):
        describe_input("gs://b/t1.tif", storage)


def test_open_pair__missing_gs_object_is_exit_3_naming_the_url(gcs_env: GCSServer, files: tuple[Path, Path]) -> None:
    urls = gcs_upload(gcs_env, {"t1.tif": files[0]})
    missing = urls["t1.tif"].replace("t1.tif", "t2.tif")
    with pytest.raises(InputError, match=rf"t2 scene '{missing}' cannot be read: the object does not exist.*"
                                         r"STORAGE_EMULATOR_HOST") as info:
        open_pair(urls["t1.tif"], missing, CFG.input, storage=CFG.storage)
    assert info.value.exit_code == 3


def test_open_pair__gs_without_credentials_is_exit_3_saying_where_to_set_them(
        gcs_env: GCSServer, files: tuple[Path, Path]) -> None:
    urls = gcs_upload(gcs_env, {"t1.tif": files[0], "t2.tif": files[1]})
    storage = StorageConfig(allow_http=True, max_retry=0)  # not anonymous; this machine has no Google credentials
    with pytest.raises(InputError, match=r"scene 'gs://.*/t1.tif' cannot be read: no credentials were found.*"
                                         r"GOOGLE_APPLICATION_CREDENTIALS.*storage.anonymous=true"):
        open_pair(urls["t1.tif"], urls["t2.tif"], CFG.input, storage=storage)


def test_open_pair__unreachable_gs_endpoint_is_exit_3_naming_the_endpoint_key(files: tuple[Path, Path]) -> None:
    storage = StorageConfig(gs_endpoint=f"http://127.0.0.1:{closed_port()}", allow_http=True, anonymous=True,
                            max_retry=0)
    with pytest.raises(InputError, match=r"'gs://b/t1.tif' cannot be read: the server cannot be reached.*"
                                         r"storage.gs_endpoint \(or STORAGE_EMULATOR_HOST\)"):
        open_pair("gs://b/t1.tif", "gs://b/t2.tif", CFG.input, storage=storage)
