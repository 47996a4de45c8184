"""The comparator registry: every configured name is registered, unknown names fail, and the table is what is built."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from s2c_batch.kernels.comparators.base import FittedComparator
from s2c_batch.kernels.comparators.classical.fitting import FitRound, FitSettings
from s2c_batch.kernels.comparators.learned.dcva import DCVA
from s2c_batch.kernels.comparators.mask_level.base import MaskComparator
from s2c_batch.kernels.comparators.options import AnyChangeOptions, ComparatorOptions, PCAKMeansOptions
from s2c_batch.kernels.comparators.registry import (
    ComparatorName,
    ComparatorSpec,
    Family,
    Fit,
    Needs,
    When,
    comparator_from_json,
    comparator_names,
    comparator_spec,
    create_comparator,
    create_mask_comparator,
    fit_comparator,
    is_comparator,
    register_comparator,
)
from s2c_batch.kernels.errors import ConfigError
from s2c_batch.kernels.model_config import ModelConfig
from s2c_batch.kernels.predictors.build import build_predictor
from s2c_batch.kernels.predictors.host import CVAPredictor
from s2c_batch.kernels.predictors.masks import MaskChangePredictor
from s2c_batch.kernels.predictors.tile import ChangePredictor
from s2c_batch.kernels.raster.tiling import Window

from testutils import REPO, TINY_MODEL

NAMES = comparator_names()
VALID = re.escape(str(list(NAMES)))


def model(name: str, **kw: Any) -> ModelConfig:
    """A valid tiny config of ``name`` (Otsu where the method implies it)."""
    spec = comparator_spec(name)
    return dataclasses.replace(TINY_MODEL, comparator=typing.cast(ComparatorName, name),
                               threshold="otsu" if spec.needs.otsu else 0.5, **kw)


def test_comparator_names__every_configured_name_is_registered() -> None:
    assert set(typing.get_args(ComparatorName)) == set(NAMES)
    configured = set()
    for path in (REPO / "configs").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text()) or {}
        if "comparator" in (doc.get("model") or {}):
            configured.add(doc["model"]["comparator"])
    assert configured and configured <= set(NAMES)
    assert all(is_comparator(n) for n in NAMES) and not is_comparator("CVA")


def test_comparator_names__by_family_in_registration_order() -> None:
    assert comparator_names(Family.CLASSICAL) == ("cva", "pca_kmeans", "irmad")
    assert comparator_names(Family.LEARNED) == ("cach", "dcva")
    assert comparator_names(Family.MASK_LEVEL) == ("anychange", "inst_ceg", "dynamicearth", "ucd_scm")
    assert sorted(comparator_names(Family.CLASSICAL) + comparator_names(Family.LEARNED)
                  + comparator_names(Family.MASK_LEVEL)) == sorted(NAMES)


def test_comparator_spec__unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=rf"model.comparator 'cvaa' is unknown; valid ones are {VALID}"):
        comparator_spec("cvaa")
    with pytest.raises(ConfigError, match=rf"valid ones are {VALID}"):
        ModelConfig(comparator=typing.cast(ComparatorName, "cvaa"))
    with pytest.raises(ConfigError, match=rf"valid ones are {VALID}"):
        create_comparator("cvaa")


def test_register_comparator__refuses_a_name_twice() -> None:
    with pytest.raises(ValueError, match="'cva' is registered already"):
        register_comparator(ComparatorSpec("cva", Family.CLASSICAL, "point", Needs(), Fit.NONE, "again"))
    assert comparator_spec("cva").summary.startswith("change vector analysis")


@pytest.mark.parametrize("name", NAMES)
def test_spec__config_rules_follow_the_needs(name: str) -> None:
    spec = comparator_spec(name)
    if spec.needs.identifier:
        with pytest.raises(ConfigError, match=rf"model.comparator={name} needs the identifier"):
            model(name, identifier="none")
    else:
        assert model(name, identifier="none").uses_torch == (spec.family is not Family.CLASSICAL)
    if spec.needs.otsu:
        with pytest.raises(ConfigError, match=rf"model.comparator={name} thresholds .* one Otsu"):
            dataclasses.replace(model(name), threshold=0.5)
    if spec.family is Family.CLASSICAL:
        assert model(name, identifier="none", standardize="scene").fitted
    else:
        with pytest.raises(ConfigError, match=r"model.standardize=scene applies to the classical comparators "
                                              r"\['cva', 'pca_kmeans', 'irmad'\]"):
            model(name, standardize="scene")
    cfg = model(name)
    assert cfg.spec is spec and cfg.mask_level == (spec.family is Family.MASK_LEVEL)
    assert cfg.fitted == (spec.fit in (Fit.SCENE, Fit.TILES))
    assert cfg.uses_torch  # the identifier runs
    keys = cfg.required_checkpoints()
    assert ("backbone_checkpoint" in keys) == (spec.needs.dinov2 is When.ALWAYS)
    assert ("cach_checkpoint" in keys) == spec.needs.cach
    assert "sam3_checkpoint" in keys  # the tiny config runs the identifier


def test_spec__checkpoints_of_the_proposals() -> None:
    alone = {n: model(n, identifier="none").required_checkpoints() for n in NAMES if
             not comparator_spec(n).needs.identifier}
    assert alone["anychange"] == ("sam3_checkpoint",)  # its proposals come from SAM 3's tracker head
    assert alone["cva"] == () and alone["cach"] == ("backbone_checkpoint", "cach_checkpoint")
    with_sam = model("ucd_scm", sam_checkpoint="sam").required_checkpoints()
    assert with_sam == ("sam3_checkpoint", "sam_checkpoint")
    assert comparator_spec("ucd_scm").checkpoint_use("sam3_checkpoint") == \
        "UCD-SCM proposes masks with SAM 3's tracker head"
    assert comparator_spec("cva").checkpoint_use("sam3_checkpoint") is None


def test_spec__dinov2_by_option() -> None:
    spec = comparator_spec("anychange")
    assert spec.needs.dinov2 is When.OPTION and not spec.uses_dinov2(ComparatorOptions())
    assert spec.uses_dinov2(ComparatorOptions(anychange=AnyChangeOptions(features="dinov2")))
    assert comparator_spec("dynamicearth").uses_dinov2(ComparatorOptions())
    assert not comparator_spec("inst_ceg").uses_dinov2(ComparatorOptions())


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 50), dtype=np.float32)
    b = a.copy()
    b[:, 10:25, 5:30] = rng.random((3, 1, 1), dtype=np.float32)
    return a, b, np.ones((40, 50), bool)


def _whole_scene(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> Any:
    h, w = valid.shape

    def run(fit_round: FitRound) -> list[Any]:
        r = fit_round.halo
        pad = ((0, 0), (r, r), (r, r))
        window = Window(-r, -r, h + 2 * r, w + 2 * r)
        return list(fit_round.block(np.pad(a, pad), np.pad(b, pad), np.pad(valid, r), window, Window(0, 0, h, w)))

    return run


@pytest.mark.parametrize("name", comparator_names(Family.CLASSICAL))
def test_fit_comparator__support_and_halo_match_the_table(name: str) -> None:
    spec = comparator_spec(name)
    a, b, valid = _scene()
    options = ComparatorOptions(pca_kmeans=PCAKMeansOptions(block=4))
    settings = FitSettings(comparator=name, bands=3, scene_shape=(40, 50), cell=16, standardize=True,
                           fixed_threshold=False, pca_kmeans=options.pca_kmeans)
    fitted = fit_comparator(settings, _whole_scene(a, b, valid))
    assert isinstance(fitted, FittedComparator) and fitted.name == name
    assert fitted.support.kind == spec.support and fitted.support.radius == spec.halo(options)
    assert comparator_from_json(fitted.to_json()) == fitted
    assert spec.fit in (Fit.ASKED, Fit.SCENE) and spec.fitted(standardize=True, otsu=False)
    assert spec.fitted(standardize=False, otsu=False) == (spec.fit is Fit.SCENE)


def test_fit_comparator__names_without_a_scene_fit_are_refused() -> None:
    for name in ("cach", "dcva", "anychange"):
        settings = FitSettings(comparator=name, bands=3, scene_shape=(4, 4), cell=4, standardize=False,
                               fixed_threshold=False)
        with pytest.raises(ValueError, match=f"no fit for comparator '{name}'"):
            fit_comparator(settings, _whole_scene(*_scene()))
    with pytest.raises(ValueError, match="fitted parameters of an unknown comparator 'cach'"):
        comparator_from_json({"comparator": "cach"})
    assert isinstance(comparator_from_json({"comparator": "dcva", "layers": [3], "channels": [[0]],
                                            "scales": [[1.0]], "reference": 2.0}), DCVA)


@pytest.mark.parametrize("name", NAMES)
def test_create_comparator__what_a_run_uses_without_a_fit(name: str) -> None:
    spec = comparator_spec(name)
    if spec.fit in (Fit.SCENE, Fit.TILES):
        with pytest.raises(ValueError, match=f"the {name} comparator is fitted to each scene"):
            create_comparator(name)
        return
    made = create_comparator(name, ComparatorOptions())
    if spec.family is Family.LEARNED:
        assert made is None  # CACH: the head is the predictor's
    elif spec.family is Family.MASK_LEVEL:
        assert isinstance(made, MaskComparator) and made.name == name
        assert create_mask_comparator(name) == made
        proposes = {When.NEVER: (False, False), When.ALWAYS: (True, True), When.OPTION: (False, False),
                    When.WITHOUT_IDENTIFIER: (False, True)}  # (with, without identifier); OPTION: not by default
        assert (made.uses_proposals(True), made.uses_proposals(False)) == proposes[spec.needs.proposals]
        assert (made.features == "dinov2") == (spec.needs.dinov2 is When.ALWAYS)  # OPTION: not by default
    else:
        assert isinstance(made, FittedComparator) and made.name == name and made.support.kind == spec.support
    if spec.family is not Family.MASK_LEVEL:
        with pytest.raises(ConfigError, match=f"model.comparator={name} is no mask-level comparator"):
            create_mask_comparator(name)


@pytest.fixture(scope="module")
def predictors() -> dict[str, Any]:
    """Every comparator's tile predictor on the tiny models (classical ones without identifier too)."""
    built: dict[str, Any] = {}
    for name in NAMES:
        built[name] = build_predictor(model(name))
        if not comparator_spec(name).needs.identifier:
            built[f"{name}/alone"] = build_predictor(model(name, identifier="none"))
    return built


@pytest.mark.parametrize("name", NAMES)
def test_build_predictor__builds_what_the_table_says(name: str, predictors: dict[str, Any]) -> None:
    spec = comparator_spec(name)
    pred = predictors[name]
    alone = predictors.get(f"{name}/alone")
    if spec.family is Family.CLASSICAL:
        assert isinstance(alone, CVAPredictor) and not spec.uses_torch(False)
        assert isinstance(pred, ChangePredictor) and pred.backbone is None and pred.cach is None
    elif spec.family is Family.LEARNED:
        assert isinstance(pred, ChangePredictor) and isinstance(alone, ChangePredictor)
        assert (pred.backbone is not None) == (spec.needs.dinov2 is When.ALWAYS)
        assert (pred.cach is not None) == spec.needs.cach
    else:
        assert isinstance(pred, MaskChangePredictor)
        assert (pred.backbone is not None) == (spec.needs.dinov2 is When.ALWAYS)
        assert (pred._parts["proposals"] is not None) == spec.proposes_up_front(True)
        if alone is not None:
            assert isinstance(alone, MaskChangePredictor) and alone.identifier is None
            assert (alone._parts["proposals"] is not None) == spec.proposes_up_front(False)
    assert pred.identifier is not None and pred.spec is spec
    rng = np.random.default_rng(0)
    four = rng.random((1, 4, 32, 32), dtype=np.float32)
    for p in (pred, alone):
        if p is None:
            continue
        rgb = spec.needs_rgb(p is pred)
        if rgb:
            with pytest.raises(ConfigError, match=r"takes? 3 bands \(RGB\), but the tiles have 4"):
                p.predict(four, four)
        else:
            assert p.predict(four, four).prob.shape == (1, 32, 32)


def test_registry__the_docs_table_names_every_comparator() -> None:
    text = (Path(REPO) / "docs" / "comparators.md").read_text()
    for name in NAMES:
        assert f"`{name}`" in text
