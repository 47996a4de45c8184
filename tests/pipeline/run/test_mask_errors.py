"""Bad masks on the command line: each is one line naming the key, the file and the fix, with its exit code.

A mask found wrong before the run starts leaves ``--out`` without products; one found
damaged while blocks are read fails the run (``run.json`` says so) and leaves no store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.output import layout

from testutils import SMALL, make_pair, write_damaged_copy, write_tif


def _run(t1: Path, t2: Path, out: Path, scheduler: str, *sets: str) -> int:
    args = ["run", str(t1), str(t2), "--out", str(out), "--config", "cva", "--scheduler", scheduler, "--no-progress"]
    for s in (*SMALL, *sets):
        args += ["--set", s]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return int(exit_.value.code or 0)


def _no_products(out: Path) -> bool:
    return not (out / layout.STORE / "zarr.json").exists() and not (out / "change_mask.tif").exists()


@pytest.mark.cluster
def test_run__bad_masks_are_one_line_with_their_exit_code_and_no_product(
        tmp_path: Path, dask_cluster, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    t1, t2 = make_pair(tmp_path, 512, 512, seed=4)
    addr = dask_cluster.address

    def fails(name: str, *sets: str) -> tuple[int, str, Path]:
        out = tmp_path / name
        code = _run(t1, t2, out, addr, *sets)
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert _no_products(out), f"{name}: a product was left in {out}"
        return code, err, out

    missing = tmp_path / "nope.tif"
    code, err, _ = fails("missing", f"input.mask_t2={missing}")
    assert code == 3 and err == (f"Error: input.mask_t2 {str(missing)!r} does not exist; check the path "
                                 "(or set input.mask_t2: null)")

    other_crs = write_tif(tmp_path / "utm32.tif", np.zeros((1, 512, 512), np.uint8), crs="EPSG:32632")
    code, err, _ = fails("crs", f"input.mask_t1={other_crs}")
    assert code == 3 and re.fullmatch(
        rf"Error: input.mask_t1 {re.escape(repr(str(other_crs)))} is not on the grid of the t1 scene: "
        r"CRS 'EPSG:32632' vs 'EPSG:\d+'\. Resample the mask onto its scene's grid, or pass "
        r"--set input.align=reproject to warp it onto the output grid \(nearest\)", err), err

    small = write_tif(tmp_path / "small.tif", np.zeros((1, 256, 512), np.uint8))
    code, err, _ = fails("shape", f"input.mask_t2={small}")
    assert code == 3 and "input.mask_t2" in err and "shape (256, 512) vs (512, 512)" in err, err

    code, err, _ = fails("preset", f"input.mask_t2={small}", "input.mask_preset=fmask")
    assert code == 2 and "input.mask_preset must be one of ['s2_scl', 'landsat_qa_pixel']" in err, err

    # not a corner tile: opening the mask reads those
    clouds = write_tif(tmp_path / "clouds.tif", np.zeros((1, 512, 512), np.uint8))
    damaged = write_damaged_copy(clouds, tmp_path / "clouds-damaged.tif", tile=1)  # rows 0:256, cols 256:512
    code, err, out = fails("damaged", f"input.mask_t2={damaged}")
    assert code == 3 and re.fullmatch(
        rf"Error: input.mask_t2: cannot read {re.escape(repr(str(damaged)))}: band 1, pixels rows 0:256, "
        r"cols 256:512 .*The file is damaged: re-download or re-copy it; .*", err), err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == "InputError: " + err.removeprefix("Error: ")
