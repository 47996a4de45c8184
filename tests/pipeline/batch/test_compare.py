"""``s2c-batch compare``'s configs: one per comparator, each setting checked against the comparators it applies to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2c_batch.kernels.comparators.registry import Family, comparator_spec
from s2c_batch.pipeline.batch.compare import comparator_configs
from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.config import load_comparator_configs, load_config
from s2c_batch.pipeline.errors import ConfigError

from testutils import RealCluster, make_pair

Capsys = pytest.CaptureFixture[str]
CLASSICAL = ["cva", "pca_kmeans", "irmad"]


def test_load_comparator_configs__standardize_checked_against_the_classical_ones() -> None:
    """The default config's comparator (cach) does not take standardize: scene; the three classical ones do."""
    with pytest.raises(ConfigError, match=r"model\.standardize=scene applies to the classical comparators"):
        load_config(None, ["model.identifier=none", "model.standardize=scene"])
    configs = load_comparator_configs(None, ["model.identifier=none", "model.standardize=scene"], CLASSICAL)
    assert list(configs) == CLASSICAL
    for name, cfg in configs.items():
        assert cfg.model.comparator == name and cfg.model.standardize == "scene" and cfg.model.fitted


def test_load_comparator_configs__each_setting_where_it_applies() -> None:
    configs = load_comparator_configs("tiny", ["model.standardize=scene", "model.threshold=0.3"],
                                      ["cach", "cva", "ucd_scm"])
    model = {name: cfg.model for name, cfg in configs.items()}
    assert (model["cach"].standardize, model["cach"].threshold) == ("none", 0.3)
    assert (model["cva"].standardize, model["cva"].threshold) == ("scene", 0.3)
    assert (model["ucd_scm"].standardize, model["ucd_scm"].threshold) == ("none", "otsu")
    assert all(comparator_spec(n).family is not Family.CLASSICAL or m.standardize == "scene" for n, m in model.items())


def test_load_comparator_configs__a_setting_that_applies_to_none_of_them() -> None:
    with pytest.raises(ConfigError, match=r"model\.standardize=scene applies to the classical comparators "
                                          r"\['cva', 'pca_kmeans', 'irmad'\], and none of \['cach', 'dcva'\] is one"):
        load_comparator_configs("tiny", ["model.standardize=scene"], ["cach", "dcva"])


def test_comparator_configs__from_one_config_equal_the_loaded_ones() -> None:
    """The Python API's rule (a Config) and the command line's (the file and overrides) agree."""
    sets = ["model.identifier=none", "model.threshold=otsu", "model.standardize=scene"]
    loaded = load_comparator_configs("cva", sets, CLASSICAL)
    assert comparator_configs(load_config("cva", sets), CLASSICAL) == loaded  # type: ignore[arg-type]


@pytest.mark.cluster
def test_compare__classical_standardize_without_the_comparator_workaround(
        tmp_path: Path, dask_cluster: RealCluster, capsys: Capsys) -> None:
    """Issue 27: `compare --comparators cva,pca_kmeans,irmad --set model.standardize=scene` on a config whose
    own comparator is cach needed `--set model.comparator=cva` to get past the config check; with Otsu too,
    the overrides of eval's command."""
    t1, t2 = make_pair(tmp_path, 96, 128, seed=4)
    args = ["compare", str(t1), str(t2), "--out", str(tmp_path / "cmp"), "--comparators", ",".join(CLASSICAL),
            "--set", "model.standardize=scene", "--set", "model.threshold=otsu", "--set", "model.identifier=none",
            "--set", "pca_kmeans.n_init=2",
            "--set", "output.stac=false", "--set", "output.quicklook=false", "--set", "output.polygons=false",
            "--scheduler", dask_cluster.address, "--no-progress"]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["comparator"] for r in doc["comparators"]] == CLASSICAL
    assert all(r["threshold"]["method"] == "otsu" for r in doc["comparators"])
    for name in CLASSICAL:
        record = json.loads((tmp_path / "cmp" / name / "run.json").read_text())
        assert record["config"]["model"]["comparator"] == name
        assert record["config"]["model"]["standardize"] == "scene"
        assert record["config"]["model"]["threshold"] == "otsu"
        assert record["fit"]["standardization"] is not None
