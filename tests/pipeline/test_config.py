"""Config loading: packaged files, overrides, unknown keys and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2c_batch.pipeline.config import Config, load_config, parse_override
from s2c_batch.pipeline.errors import ConfigError


def test_load_config__default_is_the_papers_setup() -> None:
    cfg = load_config()
    assert cfg.model.comparator == "cach" and cfg.model.identifier == "segearth_ov3"
    assert cfg.model.threshold == 0.5
    assert (cfg.tiling.tile_size, cfg.input.bands) == (512, (1, 2, 3))


def test_load_config__overrides_parse_yaml_values() -> None:
    cfg = load_config("cva", ["tiling.block_size=1024", "input.bands=[3, 2, 1]", "input.scale=null"])
    assert cfg.tiling.block_size == 1024 and cfg.input.bands == (3, 2, 1) and cfg.input.scale is None


def test_load_config__is_frozen() -> None:
    cfg = load_config("cva")
    with pytest.raises(AttributeError):
        cfg.tiling.block_size = 3  # type: ignore[misc]


def test_load_config__unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"tiling\.tile_sise.*valid keys of section 'tiling' are"):
        load_config("cva", ["tiling.tile_sise=3"])


def test_load_config__unknown_section_lists_sections() -> None:
    with pytest.raises(ConfigError, match=r"unknown config section\(s\) \['modle'\].*valid sections"):
        load_config("cva", ["modle.threshold=0.3"])


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("model.threshold=1.5", r"model\.threshold must be within \[0, 1\]"),
        ("model.threshold=high", r"model\.threshold must be a number"),
        ("tiling.overlap=600", r"tiling\.overlap must be within"),
        ("tiling.block_size=1000", r"must be a multiple of tiling\.chunk_size"),
        ("model.comparator=svm", r"model\.comparator must be one of \['cach', 'cva', 'pca_kmeans', 'irmad', "
                                 r"'dcva', 'anychange', 'inst_ceg', 'dynamicearth', 'ucd_scm'\]"),
        ("input.bands=[0, 1]", r"input\.bands must be a non-empty list of 1-based"),
        ("cluster.retries=-1", r"cluster\.retries must be >= 0"),
        ("output.min_area_m2=0", r"output\.min_area_m2 must be > 0 m2 \(or null"),
        ("output.min_area_m2=big", r"output\.min_area_m2 must be a number"),
        ("series.persistence=-1", r"series\.persistence must be >= 0"),
        ("series.against=last", r"series\.against must be one of \['previous', 'first'\]"),
    ],
)
def test_load_config__bad_values_name_the_key(item: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config("cva", [item])


def test_parse_override__needs_section_key_value() -> None:
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_override("threshold=0.3")


def test_load_config__missing_file_lists_packaged_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found.*packaged configs are \[.*'cva'.*'default'"):
        load_config(tmp_path / "nope.yaml")


def test_load_config__invalid_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiling: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config__hash_changes_with_values() -> None:
    a, b = load_config("cva"), load_config("cva", ["model.threshold=0.4"])
    assert a.hash() != b.hash() and a.hash() == load_config("cva").hash()
    assert isinstance(a.to_dict()["input"]["bands"], list)
    assert isinstance(a, Config)


def test_load_config__checkpoint_paths_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    cfg_file = tmp_path / "my.yaml"
    cfg_file.write_text("model:\n  cach_checkpoint: w/head.safetensors\n  backbone_checkpoint: /abs/b.pth\n")
    cfg = load_config(cfg_file, ["model.sam3_checkpoint=rel/sam3"])
    assert cfg.model.cach_checkpoint == str(tmp_path / "w" / "head.safetensors")
    assert cfg.model.backbone_checkpoint == "/abs/b.pth"
    assert cfg.model.sam3_checkpoint == "rel/sam3"  # --set: relative to the working directory


def test_config__products_hash_ignores_only_the_cluster_section() -> None:
    base = load_config("cva")
    assert load_config("cva", ["cluster.n_workers=3", "cluster.retries=0"]).products_hash() == base.products_hash()
    assert load_config("cva", ["cluster.n_workers=3"]).hash() != base.hash()
    for change in ("model.threshold=0.2", "tiling.overlap=64", "input.bands=[3,2,1]", "output.cog=false",
                   "output.min_area_m2=10"):
        assert load_config("cva", [change]).products_hash() != base.products_hash(), change


def test_config__series_section_is_no_part_of_a_pairs_products() -> None:
    base = load_config("cva")
    assert (base.series.persistence, base.series.against, base.output.min_area_m2) == (2, "previous", None)
    other = load_config("cva", ["series.persistence=4", "series.against=first"])
    assert other.products_hash() == base.products_hash() and other.hash() != base.hash()
