"""A damaged tile inside a valid GeoTIFF: an input error naming file, bands, pixels and GDAL's message."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio
from distributed.core import error_message
from distributed.protocol import pickle
from rasterio.errors import RasterioIOError

from s2c_batch.kernels.raster.tiling import Window
from s2c_batch.pipeline.config import load_config
from s2c_batch.pipeline.errors import InputError
from s2c_batch.pipeline.inputs import reader
from s2c_batch.pipeline.inputs.damage import gdal_messages, read_failure
from s2c_batch.pipeline.inputs.scene import open_pair
from s2c_batch.pipeline.run.plan import make_plan
from s2c_batch.pipeline.run.worker import read_block

from testutils import make_pair, write_damaged_copy


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, Path]:
    t1, t2 = make_pair(tmp_path, 512, 768, seed=4)
    return t1, write_damaged_copy(t2, tmp_path / "damaged.tif", tile=4)  # rows 256:512, cols 256:512


def test_read_window__damaged_tile_is_input_error_naming_file_bands_pixels_and_gdal(
    damaged: tuple[Path, Path]
) -> None:
    pair = open_pair(*damaged, load_config("cva").input)
    with pytest.raises(InputError, match=r"cannot read '.*damaged\.tif': bands 1, 2, 3, pixels rows 256:512, "
                                         r"cols 256:512 \(reading rows 200:400, cols 0:700\): ZIPDecode:Decoding "
                                         r"error.*re-download or re-copy it; `gdalinfo -checksum .*damaged\.tif`"):
        reader.read_window(pair.t2, Window(200, 0, 200, 700))
    data, valid = reader.read_window(pair.t2, Window(0, 0, 256, 256))  # the other tiles read fine
    assert data.shape == (3, 256, 256) and valid.all()


def test_read_failure__a_failure_that_does_not_reproduce_is_returned_for_a_retry(tmp_path: Path) -> None:
    t1, _ = make_pair(tmp_path, 64, 64)
    transient = RasterioIOError("Read failed. See previous exception for details.")
    with rasterio.open(t1) as src:
        assert read_failure(str(t1), src, (1, 2, 3), Window(0, 0, 64, 64), transient) is transient


def test_gdal_messages__first_cause_first() -> None:
    try:
        try:
            raise OSError("ZIPDecode:Decoding error at scanline 0")
        except OSError as first:
            raise RasterioIOError("Read failed. See previous exception for details.") from first
    except RasterioIOError as exc:
        assert gdal_messages(exc) == ["ZIPDecode:Decoding error at scanline 0"]


def test_read_block__input_error_survives_dask_serialisation(damaged: tuple[Path, Path]) -> None:
    pair = open_pair(*damaged, load_config("cva").input)
    block = make_plan(pair, load_config("cva")).block_at(0, 0)
    with pytest.raises(InputError) as raised:
        read_block(pair, block)
    # What a worker sends and the client unpacks: GDAL's unpicklable causes must not degrade it.
    sent = error_message(raised.value)["exception"]
    got = pickle.loads(sent.data)
    assert type(got) is InputError and str(got) == str(raised.value) and got.exit_code == 3
