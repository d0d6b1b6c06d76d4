import pytest

from generation import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, ActionUnitError, blendshape_weights, pspi
from generation.facs import parse_au_assignments, validate_action_units


@pytest.mark.parametrize(
    "aus, expected",
    [
        ({}, 0),
        ({"AU4": 3}, 3),
        ({"AU6": 2, "AU7": 4}, 4),  # max(AU6, AU7)
        ({"AU9": 5, "AU10": 1}, 5),  # max(AU9, AU10)
        ({"AU43": 1}, 1),
        ({"AU4": 2, "AU6": 3, "AU7": 1, "AU9": 0, "AU10": 2, "AU43": 1}, 2 + 3 + 2 + 1),
        ({"AU4": 5, "AU6": 5, "AU7": 5, "AU9": 5, "AU10": 5, "AU43": 1}, 16),
        ({"AU4": 1.5, "AU7": 2.5}, 4.0),  # fractional intensities are allowed
        ({"AU12": 5, "AU26": 5, "AU4": 1}, 1),  # extended AUs never enter PSPI
    ],
)
def test_pspi_hand_checked(aus, expected):
    assert pspi(aus) == pytest.approx(expected)


def test_au_sets():
    assert PAIN_AUS == ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")
    assert set(EXTENDED_AUS) >= {"AU12", "AU20", "AU25", "AU26"}
    assert ACTION_UNITS["AU43"].binary and ACTION_UNITS["AU43"].max_intensity == 1


@pytest.mark.parametrize(
    "aus, message",
    [
        ({"AU5": 2}, "unknown action unit 'AU5'"),
        ({"brow": 2}, "unknown action unit"),
        ({"AU4": 6}, "within 0-5"),
        ({"AU4": -1}, "within 0-5"),
        ({"AU43": 0.5}, "binary"),
        ({"AU43": 2}, "binary"),
        ({"AU6": "strong"}, "must be a number"),
    ],
)
def test_bad_action_units_rejected(aus, message):
    with pytest.raises(ActionUnitError, match=message):
        pspi(aus)
    with pytest.raises(ActionUnitError, match=message):
        blendshape_weights(aus)


def test_validate_fills_and_normalises_names():
    assert validate_action_units({"au4": 2}) == {"AU4": 2.0, "AU6": 0.0, "AU7": 0.0, "AU9": 0.0, "AU10": 0.0, "AU43": 0.0}
    with pytest.raises(ActionUnitError, match="mapping"):
        validate_action_units([("AU4", 2)])


def test_parse_au_assignments():
    assert parse_au_assignments(["AU4=3", " AU43 = 1 "]) == {"AU4": 3.0, "AU43": 1.0}
    for bad in (["AU4"], ["=3"], ["AU4="], ["AU4:3"]):
        with pytest.raises(ActionUnitError, match="NAME=INTENSITY"):
            parse_au_assignments(bad)


def test_blendshape_weights_linear_and_bounded():
    assert blendshape_weights({}) == {}
    half = blendshape_weights({"AU4": 2.5})
    assert half == {"browDown_L": 0.5, "browDown_R": 0.5}
    assert blendshape_weights({"AU43": 1}) == {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}
    full = blendshape_weights({name: ACTION_UNITS[name].max_intensity for name in ACTION_UNITS})
    assert all(0.0 < w <= 1.0 for w in full.values())


def test_au10_eased_under_au9():
    alone = blendshape_weights({"AU10": 5})["mouthUpperUp_L"]
    with_nose = blendshape_weights({"AU10": 5, "AU9": 5})["mouthUpperUp_L"]
    assert alone == 1.0 and 0.5 < with_nose < alone
