"""Which pixels a quality layer says were observed: mask rules and the two standard presets.

A date's pixel is *observed* when its scene has a value there (nodata, NaN, the dataset's
mask band or alpha band decide that, in the reader) and its external mask, when one is
given (``input.mask_t1`` / ``input.mask_t2``), does not flag it. This module holds the
second half: a :class:`MaskRule` turns the values of a mask raster into "observed" or
"not observed", and :data:`MASK_PRESETS` holds the rules of the two standard layers.

- Sentinel-2 L2A Scene Classification (``s2_scl``): 0 no data, 1 saturated or defective,
  3 cloud shadows, 8 and 9 cloud (medium, high probability), 10 thin cirrus, 11 snow or
  ice are not observed; 2 dark area, 4 vegetation, 5 not vegetated, 6 water and
  7 unclassified are.
- Landsat Collection 2 ``QA_PIXEL`` (``landsat_qa_pixel``): a pixel with any of bit 0
  (fill), 1 (dilated cloud), 2 (cirrus), 3 (cloud), 4 (cloud shadow) or 5 (snow) set is
  not observed. Saturation is flagged per band in ``QA_RADSAT``, not here: give that
  layer as a mask of its own (any nonzero value = not observed) when it matters.

Example:
    >>> observed(np.array([[0, 4, 9]]), MASK_PRESETS["s2_scl"]).tolist()
    [[False, True, False]]
    >>> observed(np.array([[0, 2, 1 << 6]]), MaskRule()).tolist()
    [[True, False, False]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskRule:
    """How the values of a mask raster say "not observed".

    Attributes:
        values: the values that mean "not observed"; ``None`` (and no ``bits``) = any
            nonzero value.
        bits: a bit mask: a pixel with any of these bits set is not observed (integer
            masks only); 0 = no bit test.
        name: what the rule is called in messages and ``run.json``.
    """

    values: tuple[float, ...] | None = None
    bits: int = 0
    name: str = "nonzero"

    def to_json(self) -> dict[str, object]:
        """As recorded in ``run.json``."""
        return {"name": self.name, "values": list(self.values) if self.values is not None else None,
                "bits": self.bits or None}


#: Sentinel-2 L2A SCL: no data, saturated, cloud shadow, cloud (medium, high), cirrus, snow.
S2_SCL = MaskRule(values=(0, 1, 3, 8, 9, 10, 11), name="s2_scl")

#: Landsat Collection 2 QA_PIXEL: fill, dilated cloud, cirrus, cloud, cloud shadow, snow (bits 0-5).
LANDSAT_QA_PIXEL = MaskRule(bits=0b111111, name="landsat_qa_pixel")

#: ``input.mask_preset`` -> its rule.
MASK_PRESETS: dict[str, MaskRule] = {"s2_scl": S2_SCL, "landsat_qa_pixel": LANDSAT_QA_PIXEL}


def mask_rule(values: tuple[float, ...] | None = None, preset: str | None = None) -> MaskRule:
    """The rule of ``input.mask_values`` / ``input.mask_preset`` (at most one of them set).

    Raises:
        ValueError: both are set, or the preset is unknown (the valid ones are listed).
    """
    if values is not None and preset is not None:
        raise ValueError("give input.mask_values or input.mask_preset, not both")
    if preset is not None:
        if preset not in MASK_PRESETS:
            raise ValueError(f"unknown mask preset {preset!r}; valid ones are {sorted(MASK_PRESETS)}")
        return MASK_PRESETS[preset]
    if values is not None:
        return MaskRule(values=tuple(values), name="values")
    return MaskRule()


def observed(mask: np.ndarray, rule: MaskRule) -> np.ndarray:
    """Where a mask raster's pixels were observed under ``rule``.

    Args:
        mask: ``[h, w]`` values of the mask raster (any numeric dtype).
        rule: what "not observed" means.

    Returns:
        bool ``[h, w]``: True where the pixel was observed. A NaN in a float mask is
        never observed.
    """
    mask = np.asarray(mask)
    flagged = np.zeros(mask.shape, bool)
    if mask.dtype.kind == "f":
        flagged |= np.isnan(mask)
    if rule.bits:
        if mask.dtype.kind not in "iu":
            raise ValueError(f"the {rule.name} rule tests bits and needs an integer mask, got {mask.dtype}")
        flagged |= (mask.astype(np.int64) & rule.bits) != 0
    if rule.values is not None:
        flagged |= np.isin(mask, np.asarray(rule.values, dtype=np.float64))
    elif not rule.bits:
        flagged |= mask != 0
    return ~flagged
