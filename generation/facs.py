"""Facial Action Coding System (FACS) facts used everywhere in 3DPain: the action units, their valid
intensities, the PSPI pain score, and how each AU drives the face model's ARKit-named blendshapes.

This module is the single owner of the AU list and of PSPI. Intensities follow FACS A-E as 1-5 (0 = absent);
AU43 (eyes closed) is binary, 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping
from .errors import Pain3DError


@dataclass(frozen=True)
class ActionUnit:
    """One facial action unit.

    `blendshapes` maps ARKit blendshape names to their weight at full intensity; the weight at intensity `x` is
    `x / max_intensity` times that (linear, so the rendered face and the label agree exactly).
    """

    name: str
    description: str
    blendshapes: Mapping[str, float] = field(default_factory=dict)
    max_intensity: int = 5
    binary: bool = False
    in_pspi: bool = False


def _both(shape: str, weight: float = 1.0) -> dict[str, float]:
    return {f"{shape}_L": weight, f"{shape}_R": weight}


# The AU -> blendshape table was tuned by looking at renders of the ICT face model (docs/au_*.png).
ACTION_UNITS: dict[str, ActionUnit] = {
    au.name: au
    for au in (
        ActionUnit("AU4", "brow lowerer", _both("browDown"), in_pspi=True),
        ActionUnit("AU6", "cheek raiser", {**_both("cheekSquint"), **_both("cheekRaiser", 0.6)}, in_pspi=True),
        ActionUnit("AU7", "lid tightener", _both("eyeSquint"), in_pspi=True),
        ActionUnit("AU9", "nose wrinkler", _both("noseSneer"), in_pspi=True),
        ActionUnit("AU10", "upper lip raiser", {**_both("mouthUpperUp"), "mouthShrugUpper": 0.3}, in_pspi=True),
        ActionUnit("AU43", "eyes closed", _both("eyeBlink"), max_intensity=1, binary=True, in_pspi=True),
        # Extended AUs: non-pain distractors, never part of PSPI.
        ActionUnit("AU12", "lip corner puller", _both("mouthSmile")),
        ActionUnit("AU20", "lip stretcher", _both("mouthStretch")),
        ActionUnit("AU25", "lips part", {**_both("mouthLowerDown", 0.6), "jawOpen": 0.1}),
        ActionUnit("AU26", "jaw drop", {"jawOpen": 0.6}),
        # A spontaneous blink (clips only): the lids' closure as a fraction 0-1 through the blink, never in PSPI and
        # never a still's distractor (kept out of EXTENDED_AUS, so the stills' columns stay as they are).
        ActionUnit("AU45", "blink", _both("eyeBlink"), max_intensity=1),
    )
}
BLINK_AU = "AU45"

PAIN_AUS: tuple[str, ...] = tuple(name for name, au in ACTION_UNITS.items() if au.in_pspi)
EXTENDED_AUS: tuple[str, ...] = tuple(
    name for name, au in ACTION_UNITS.items() if not au.in_pspi and name != BLINK_AU
)
PSPI_MAX = 16
# Pain detection is reported at PSPI >= each threshold (model heads, metrics, dataset card).
PAIN_THRESHOLDS: tuple[int, ...] = (1, 2, 3)

# AU9 and AU10 both pull the nasolabial region; at full strength together the folds intersect on this model,
# so mouthUpperUp is eased off in proportion to the nose wrinkle (tuned on renders, docs/au_AU9_AU10.png).
_AU10_EASE_UNDER_AU9 = 0.35


class ActionUnitError(Pain3DError, ValueError):
    """An action unit name or intensity that FACS (as used here) does not allow."""


def validate_action_units(action_units: Mapping[str, float], *, fill: bool = True) -> dict[str, float]:
    """Check names and intensities; return a dict with every pain AU present (missing ones 0) when `fill`.

    Raises ActionUnitError naming the offending AU and the allowed values.
    """
    if not isinstance(action_units, Mapping):
        raise ActionUnitError(f"action units must be a mapping like {{'AU4': 3}}, got {type(action_units).__name__}")
    checked: dict[str, float] = {name: 0.0 for name in PAIN_AUS} if fill else {}
    given: dict[str, str] = {}
    for name, value in action_units.items():
        au = ACTION_UNITS.get(str(name).upper())
        if au is None:
            raise ActionUnitError(
                f"unknown action unit {name!r}; known: {', '.join(ACTION_UNITS)} (write them as 'AU4', 'AU43', ...)"
            )
        if au.name in given:  # 'au12' and 'AU12' in one mapping: which one was meant is unknown
            raise ActionUnitError(f"{au.name} is given twice ({given[au.name]!r} and {name!r}): give each AU once")
        given[au.name] = name
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ActionUnitError(f"{au.name} intensity must be a number, got {value!r}") from None
        if au.binary and value not in (0.0, 1.0):
            raise ActionUnitError(f"{au.name} ({au.description}) is binary: use 0 or 1, got {value:g}")
        if not 0.0 <= value <= au.max_intensity:
            raise ActionUnitError(
                f"{au.name} ({au.description}) intensity must be within 0-{au.max_intensity} "
                f"(FACS A-E as 1-5), got {value:g}"
            )
        checked[au.name] = value
    return checked


def pspi(action_units: Mapping[str, float]) -> float:
    """Prkachin and Solomon Pain Intensity: AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43, in 0-16.

    Missing AUs count as 0; extended (non-pain) AUs are ignored.
    """
    au = validate_action_units(action_units)
    return au["AU4"] + max(au["AU6"], au["AU7"]) + max(au["AU9"], au["AU10"]) + au["AU43"]


def parse_au_assignments(assignments: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Parse CLI-style `["AU4=3", "AU43=1"]` into a validated dict (only the given AUs)."""
    parsed: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ActionUnitError(f"write action units as NAME=INTENSITY, e.g. AU4=3; got {item!r}")
        earlier = next((f"{k}={v}" for k, v in parsed.items() if k.upper() == name.strip().upper()), None)
        if earlier is not None:  # silently keeping the last one would hide a typo
            raise ActionUnitError(f"{name.strip().upper()} is given twice ({earlier} and {item}): give each AU once")
        parsed[name.strip()] = value.strip()
    return validate_action_units(parsed, fill=False)


def blendshape_weights(action_units: Mapping[str, float]) -> dict[str, float]:
    """ARKit blendshape weights (0-1) for the given AU intensities. Shapes driven by several AUs add up, capped at 1."""
    au = validate_action_units(action_units)
    weights: dict[str, float] = {}
    for name, intensity in au.items():
        unit = ACTION_UNITS[name]
        scale = intensity / unit.max_intensity
        if name == "AU10":
            scale *= 1.0 - _AU10_EASE_UNDER_AU9 * au["AU9"] / ACTION_UNITS["AU9"].max_intensity
        for shape, weight in unit.blendshapes.items():
            if weight and scale:
                weights[shape] = min(1.0, weights.get(shape, 0.0) + weight * scale)
    return weights
