"""The synthetic series: seeded and byte-identical, dated, with the planted states and pair truths it states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from s2c_batch.pipeline.cli import cli, main
from s2c_batch.pipeline.errors import ConfigError
from s2c_batch.pipeline.inputs.acquisition import acquisition_datetime
from s2c_batch.pipeline.synth.series import CHANGED, write_synthetic_series


def test_write_synthetic_series__seeded_dated_and_planted(tmp_path: Path) -> None:
    a = write_synthetic_series(tmp_path / "a", n_dates=5, seed=7)
    b = write_synthetic_series(tmp_path / "b", n_dates=5, seed=7)
    assert [p.read_bytes() for p in a.dates] == [p.read_bytes() for p in b.dates]
    assert [acquisition_datetime(p) for p in a.dates] == list(a.times)
    changed, observed = a.states()
    with rasterio.open(a.dates[2]) as src:
        data = src.read()
        assert src.nodata == 0
    np.testing.assert_array_equal((data == CHANGED).all(axis=0), changed[2] & observed[2])
    np.testing.assert_array_equal((data == 0).all(axis=0), ~observed[2])
    truth = a.pair_truth(against="previous")
    cell = a.event_cells("flicker of one date")
    assert truth[:, cell[0], cell[1]].max(axis=(1, 2)).tolist() == [1, 1, 0, 0]  # the change and its return
    first = a.pair_truth(against="first")
    assert first[:, cell[0], cell[1]].max(axis=(1, 2)).tolist() == [1, 0, 0, 0]
    cloud = a.event_cells("lasting, unobserved on date 2")
    assert (truth[1][cloud] == 255).all() and (truth[2][cloud] == 255).all() and (first[1][cloud] == 255).all()


def test_write_synthetic_series__too_few_dates_or_pixels(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 5 dates"):
        write_synthetic_series(tmp_path, n_dates=4)
    with pytest.raises(ConfigError, match="size >= 128"):
        write_synthetic_series(tmp_path, size=100)


def test_synth_cli__dates_writes_a_series_and_refuses_to_overwrite_it(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["synth", str(tmp_path / "s"), "--size", "128", "--seed", "7", "--dates", "5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(tmp_path / "s" / f"date_{t:02d}.tif") for t in range(5)]
    want = write_synthetic_series(tmp_path / "lib", n_dates=5, seed=7)
    written = sorted((tmp_path / "s").glob("date_*.tif"))
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in want.dates]
    with pytest.raises(SystemExit) as again:
        main(args)
    assert again.value.code == 4 and "date_00.tif' already exists; pass --overwrite" in capsys.readouterr().err
    assert CliRunner().invoke(cli, [*args, "--overwrite"]).exit_code == 0
    assert CliRunner().invoke(cli, [*args[:-1], "4"]).exit_code == 2
