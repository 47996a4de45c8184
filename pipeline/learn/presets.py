"""Semantic-change presets of ``s2c-batch eval``: SECOND and SC-SCD scored as the authors score them.

A preset names the prompt list (``model.vocab``) and, for each class id of the
dataset's class maps (``label1/``, ``label2/`` or ``GT_T1/``, ``GT_T2/``), the
vocabulary classes whose change counts as that class. The ids are those of the
authors' ``dataset/ovcd.py`` (``SECOND_CLASS_MAPPING``, ``SCSCD_CLASS_MAPPING``)
and the vocabulary classes those of their ``test_cach_ovcd.py`` (``SECOND-ALL``:
Building [8], Tree [5], Water [6], Grass [2, 7], Ground [1], Playground [3];
``SCSCD-ALL``: [0] ... [6]), so ``s2c-batch eval DATASET --preset second`` reports
Table 2's per-class scores and their means (mF1, mIoU, mOA, mKappa).

The class ids must be those of the label files the authors used. For SECOND they
are not the order of the dataset's colour palette that other code converts to
(e.g. DynamicEarth's ``evaluate_second.py``: water 1, ground 2, low vegetation 3,
tree 4, building 5, playground 6); labels converted that way need ``--class``
items instead (docs/fidelity.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from s2c_batch.pipeline.errors import ConfigError


@dataclass(frozen=True)
class EvalPreset:
    """One dataset's semantic classes.

    Attributes:
        vocab: the packaged prompt list (``model.vocab``).
        classes: ``(dataset class id, vocabulary class names)`` pairs, in id order.
        source: where the ids and the names come from.
    """

    vocab: str
    classes: tuple[tuple[int, tuple[str, ...]], ...]
    source: str

    @property
    def semantic_classes(self) -> dict[int, tuple[str, ...]]:
        """Dataset class id -> vocabulary class names (``evaluate_dataset``'s ``semantic_classes``)."""
        return dict(self.classes)


EVAL_PRESETS: dict[str, EvalPreset] = {
    "second": EvalPreset(
        vocab="second",
        classes=(
            (1, ("grass", "cropland")),
            (2, ("bareland",)),
            (3, ("tree",)),
            (4, ("water",)),
            (5, ("building",)),
            (6, ("sports field",)),
        ),
        source="Seg2Change dataset/ovcd.py SECOND_CLASS_MAPPING (grass 1, ground 2, tree 3, water 4, "
        "building 5, playground 6) and test_cach_ovcd.py SECOND-ALL target indices",
    ),
    "sc_scd": EvalPreset(
        vocab="sc_scd",
        classes=(
            (0, ("bareland",)),
            (1, ("water",)),
            (2, ("building",)),
            (3, ("structure",)),
            (4, ("farmland",)),
            (5, ("grass",)),
            (6, ("road",)),
        ),
        source="Seg2Change dataset/ovcd.py SCSCD_CLASS_MAPPING (bareland 0, water 1, building 2, structure 3, "
        "farmland 4, vegetation 5, road 6) and test_cach_ovcd.py SCSCD-ALL target indices",
    ),
}


def eval_preset(name: str) -> EvalPreset:
    """The preset called ``name``.

    Raises:
        ConfigError: no such preset (the message lists them).
    """
    try:
        return EVAL_PRESETS[name]
    except KeyError:
        raise ConfigError(f"--preset {name!r} is unknown; choose one of {sorted(EVAL_PRESETS)}") from None
