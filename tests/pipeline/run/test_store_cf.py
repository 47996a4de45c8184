"""``change.zarr`` as xarray and rioxarray read it with no option (issue 31).

A plain ``xr.open_zarr`` of a run's store, in a folder and on the moto S3 server,
raises no warning, reads one metadata object (the consolidated ``zarr.json``), makes
``spatial_ref`` a coordinate, gives the COG's CRS and transform, masks nodata and
decodes ``change_prob`` to probabilities; the stored bytes stay the uint8 encodings.
The class maps' names and the stopped and resumed runs are checked where those runs
are made (``test_runner.py``, ``test_recovery.py``).
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS as RioCRS
from zarr.storage import LocalStore, ObjectStore

from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.inputs.scene import Grid
from s2c_batch.pipeline.output import layout, store
from s2c_batch.pipeline.run.runner import run_change_detection

from objectstore import S3Server
from testutils import CRS, SMALL, TRANSFORM, RealCluster, read_band

PRODUCTS = ("change_prob", "change_mask")


class CountingStore(LocalStore):
    """A local Zarr store that records every key read (the requests an object store would get)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, read_only=True)
        self.keys: list[str] = []

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.keys.append(key)
        return await super().get(key, *args, **kwargs)


class CountingObjectStore(ObjectStore):  # type: ignore[type-arg]
    """An obstore-backed Zarr store that records every key read."""

    def __init__(self, obstore: Any) -> None:
        super().__init__(obstore, read_only=True)
        self.keys: list[str] = []

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.keys.append(key)
        return await super().get(key, *args, **kwargs)


@contextmanager
def _warnings_as_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _rio(ds: xr.Dataset) -> tuple[Any, Affine]:
    """The dataset's CRS and transform as rioxarray gives them.

    rioxarray 0.19 builds the transform with affine's ``*``, which affine 3 flags with a
    PendingDeprecationWarning (the one setup.cfg ignores); that is theirs, not the store's.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
        return ds.rio.crs, ds.rio.transform()


def _metadata_reads(keys: list[str]) -> list[str]:
    """The metadata objects read (zarr-python 3 also probes the v2 names ``.zgroup``, ``.zattrs`` and
    ``.zmetadata`` once, concurrently with ``zarr.json``, when no ``zarr_format`` is given)."""
    return [k for k in keys if k.endswith("zarr.json")]


def _assert_decoded_like_the_cogs(ds: xr.Dataset, out: Path) -> None:
    """Every product of ``ds`` (opened plainly) decodes the pixels of the run's COGs in ``out``."""
    assert set(ds.data_vars) == set(PRODUCTS)
    assert "spatial_ref" in ds.coords
    for name in PRODUCTS:
        with rasterio.open(out / f"{name}.tif") as cog:
            crs, transform, raw = cog.crs, cog.transform, cog.read(1)
        da = ds[name]
        assert da.attrs["grid_mapping"] == "spatial_ref" and da.encoding["_FillValue"] == 255
        assert da.rio.encoded_nodata == 255
        assert _rio(da.to_dataset()) == (crs, transform) == (RioCRS.from_string(CRS), TRANSFORM)
        valid = raw != 255
        assert valid.any() and not valid.all(), "the scene has nodata"
        with _warnings_as_errors():
            decoded = da.values
            count = int(da.count())
            mean = float(da.mean())
        assert (np.isnan(decoded) == ~valid).all() and count == int(valid.sum())
        if name == "change_prob":
            assert decoded.dtype == np.float64 and da.encoding["scale_factor"] == 1 / 254
            expected = raw[valid].astype(np.float64) * (1 / 254)  # xarray multiplies by scale_factor
            np.testing.assert_array_equal(decoded[valid], expected)
            assert 0 <= decoded[valid].min() and decoded[valid].max() <= 1
            # Summed in dask's chunks rather than in one numpy pass: equal to the last bits.
            assert mean == pytest.approx(expected.mean(), rel=1e-12, abs=0)
            assert da.attrs["valid_range"] == [0, 254]
        else:
            assert da.attrs["flag_values"] == [0, 1] and da.attrs["flag_meanings"] == "unchanged changed"
            np.testing.assert_array_equal(decoded[valid], raw[valid].astype(np.float32))
            # Decoded as float32; summed in float64, 0s and 1s give the exact mean.
            assert float(da.mean(dtype=np.float64)) == raw[valid].mean()


@pytest.mark.cluster
def test_open_zarr__plain_open_of_a_run_decodes_crs_nodata_and_probabilities(clean: Path) -> None:
    path = clean / layout.STORE
    counting = CountingStore(path)
    with _warnings_as_errors():
        ds = xr.open_zarr(counting)
    assert _metadata_reads(counting.keys) == ["zarr.json"], counting.keys
    _assert_decoded_like_the_cogs(ds, clean)
    with _warnings_as_errors():
        ds = xr.open_zarr(path)  # the folder's name, as a user types it
        raw = xr.open_zarr(path, mask_and_scale=False)
    assert _rio(ds) == (RioCRS.from_string(CRS), TRANSFORM)
    for name in PRODUCTS:  # the stored bytes are the uint8 encodings, equal to the COGs'
        assert raw[name].dtype == np.uint8
        np.testing.assert_array_equal(raw[name].values, read_band(clean / f"{name}.tif"))


@pytest.mark.cluster
def test_open_zarr__store_on_s3_opens_as_the_folder(
        aws_env: S3Server, scene: tuple[Path, Path], clean: Path, s3_workers: RealCluster) -> None:
    from obstore.store import S3Store

    bucket = f"out-{uuid.uuid4().hex[:12]}"
    aws_env.client().create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/runs/r1"
    res = run_change_detection(*scene, url, load_config("cva", [*SMALL, "storage.allow_http=true"]),
                               scheduler=s3_workers.address, progress=False)
    assert res.status == "complete"
    # What a user writes: obstore finds the endpoint and keys in AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...
    counting = CountingObjectStore(S3Store.from_url(f"{url}/change.zarr", client_options={"allow_http": True}))
    with _warnings_as_errors():
        ds = xr.open_zarr(counting)
    assert _metadata_reads(counting.keys) == ["zarr.json"], counting.keys
    _assert_decoded_like_the_cogs(ds, clean)  # the same pixels as the run to a folder
    with _warnings_as_errors():
        local = xr.open_zarr(clean / layout.STORE)
    for name in PRODUCTS:
        assert ds[name].attrs == local[name].attrs
        np.testing.assert_array_equal(ds[name].values, local[name].values)


@pytest.mark.cluster
def test_open_zarr__without_consolidated_metadata_warns_and_reads_every_array(clean: Path, tmp_path: Path) -> None:
    """What the consolidated metadata saves: the store as it is while a run writes it."""
    path = tmp_path / layout.STORE
    shutil.copytree(clean / layout.STORE, path)
    store.unconsolidate(path)
    assert not store.is_consolidated(path)
    counting = CountingStore(path)
    with pytest.warns(RuntimeWarning, match="Failed to open Zarr store with consolidated metadata"):
        xr.open_zarr(counting)
    assert sorted(_metadata_reads(counting.keys)) == sorted(
        ["zarr.json", "zarr.json", *(f"{a}/zarr.json" for a in (*PRODUCTS, "spatial_ref", "x", "y"))])


def _grid() -> Grid:
    return Grid(RioCRS.from_string(CRS).to_wkt(), tuple(TRANSFORM)[:6], 96, 80)  # type: ignore[arg-type]


def test_consolidate__deterministic_and_removed_by_unconsolidate(tmp_path: Path) -> None:
    path = tmp_path / "change.zarr"
    names = ("background", "sports field", "water")
    store.create_store(path, _grid(), ("change_prob", "class_t1"), shard=64, chunk=32, attrs={"fingerprint": "f"},
                       class_names=names)
    created = (path / "zarr.json").read_bytes()
    store.unconsolidate(path)  # nothing to remove: zarr.json is not rewritten
    assert (path / "zarr.json").read_bytes() == created and not store.is_consolidated(path)
    store.consolidate(path)
    first = (path / "zarr.json").read_bytes()
    meta = json.loads(first)["consolidated_metadata"]["metadata"]
    assert sorted(meta) == ["change_prob", "class_t1", "spatial_ref", "x", "y"]
    assert meta["class_t1"]["attributes"]["flag_meanings"] == "background sports_field water"
    assert meta["class_t1"]["attributes"]["flag_values"] == [0, 1, 2]
    store.unconsolidate(path)
    assert not store.is_consolidated(path) and (path / "zarr.json").read_bytes() == created
    store.consolidate(path)
    assert (path / "zarr.json").read_bytes() == first


def test_cf_attributes__every_product() -> None:
    unknown = {"_FillValue": 255, "comment": store.UNKNOWN_COMMENT}  # no flag value stands for unknown
    assert store.cf_attributes("change_prob") == {**unknown, "scale_factor": 1 / 254,
                                                  "valid_range": [0, 254], "units": "1"}
    assert store.cf_attributes("change_mask") == {**unknown, "flag_values": [0, 1],
                                                  "flag_meanings": "unchanged changed"}
    assert store.cf_attributes("class_t2", ("background", "low  vegetation")) == {
        **unknown, "flag_values": [0, 1], "flag_meanings": "background low_vegetation"}
    assert store.cf_attributes("class_t2") == unknown
    assert store.UNKNOWN_COMMENT.startswith("_FillValue 255 (NaN once decoded) = unknown: a date did not observe")


@pytest.mark.cluster
def test_gdal__the_bundled_version_reads_the_cogs_not_the_store(clean: Path) -> None:
    """rasterio's wheel bundles GDAL 3.10, which has no Zarr v3 sharding codec (GDAL's own arrived
    in 3.13): the README sends GIS users to the COGs. A rasterio bundling GDAL 3.13 or later takes
    the other branch, which checks that it reads the store; then update the README's "Products"."""
    version = tuple(int(v) for v in rasterio.__gdal_version__.split(".")[:2])
    name = f'ZARR:"{clean / layout.STORE}":/change_prob'
    if version < (3, 13):
        with pytest.raises(rasterio.errors.RasterioIOError, match="Unsupported codec: sharding_indexed"):
            rasterio.open(name)
    else:
        with rasterio.open(name) as src:
            np.testing.assert_array_equal(src.read(1), read_band(clean / "change_prob.tif"))
    with rasterio.open(clean / "change_prob.tif") as cog:
        assert cog.crs == RioCRS.from_string(CRS) and cog.nodata == 255
