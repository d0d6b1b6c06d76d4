"""The FACS rig: identity coefficients + AU intensities -> posed face-model vertices (mm)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .accessories import lobe_vertices
from .eyelashes import lash_anchors
from .geometry import smoothstep, vertex_normals
from .model import FaceModel
from ..facs import blendshape_weights


def sample_identity(rng: np.random.Generator, num_components: int = 100, scale: float = 1.0) -> np.ndarray:
    """Identity PCA coefficients (in standard deviations) drawn from N(0, scale^2)."""
    return rng.normal(0.0, scale, size=num_components).astype(np.float32)


def pose_face(
    face_model: FaceModel, identity: np.ndarray | None, action_units: Mapping[str, float] | None = None
) -> np.ndarray:
    """Vertices (V, 3) in mm of an identity showing the given AU intensities (0-5; AU43 0/1). Validates the AUs."""
    return face_model.vertices(identity, blendshape_weights(action_units or {}))


# Face measures (mm) as signed sums of landmark coordinates: (landmark, axis 0/1/2 = x/y/z, sign).
MEASURES: dict[str, tuple[tuple[int, int, float], ...]] = {
    "jaw_width": ((12, 0, 1), (4, 0, -1), (13, 0, 0.5), (3, 0, -0.5)),
    "face_width": ((15, 0, 1), (1, 0, -1)),
    "lower_face_height": ((27, 1, 1), (8, 1, -1)),
    "chin_height": ((57, 1, 1), (8, 1, -1)),
    "chin_projection": ((8, 2, 1), (33, 2, -0.5), (51, 2, -0.5)),
    "brow_ridge": ((19, 2, 0.5), (24, 2, 0.5), (37, 2, -0.5), (44, 2, -0.5)),
    "brow_height": ((19, 1, 0.5), (24, 1, 0.5), (37, 1, -0.5), (44, 1, -0.5)),
    "nose_width": ((35, 0, 1), (31, 0, -1)),
    "nose_length": ((27, 1, 1), (33, 1, -1)),
    "nose_projection": ((30, 2, 1), (27, 2, -1)),
    "mouth_width": ((54, 0, 1), (48, 0, -1)),
    "upper_lip": ((51, 1, 1), (62, 1, -1)),
    "lower_lip": ((66, 1, 1), (57, 1, -1)),
    "eye_width": ((45, 0, 0.5), (42, 0, -0.5), (39, 0, 0.5), (36, 0, -0.5)),
    "eye_spacing": ((42, 0, 1), (39, 0, -1)),
    "cheek_projection": ((1, 2, 0.5), (15, 2, 0.5), (30, 2, -0.2)),
    "nose_lead": ((30, 2, 1), (51, 2, -1)),  # how far the nose tip stands in front of the upper lip, in profile
}
# The profile stays human whatever the draws: the nose tip stands in front of the upper lip by this much (mm).
NOSE_LEAD_MM = (8.0, 24.0)
# Male minus female averages (mm), from anthropometric surveys' direction and rough size: a stronger jaw, brow
# ridge, nose and chin, thinner lips and relatively smaller eyes in men.
SEX_DIFFERENCE = {"jaw_width": 9.0, "face_width": 6.0, "lower_face_height": 7.0, "chin_height": 3.5,
                  "chin_projection": 2.0, "brow_ridge": 3.0, "brow_height": -2.5, "nose_width": 3.0,
                  "nose_length": 4.0, "nose_projection": 2.5, "mouth_width": 2.5, "upper_lip": -1.2,
                  "lower_lip": -1.5, "eye_width": -0.8, "cheek_projection": -1.0}
# Change from 25 to 90 years (mm): thinner lips, a longer, drooping nose, a wider lower face, sunken cheeks.
AGE_CHANGE = {"upper_lip": -2.5, "lower_lip": -2.5, "nose_length": 4.0, "nose_width": 2.0,
              "jaw_width": 3.0, "cheek_projection": -3.0, "mouth_width": 1.5, "lower_face_height": 2.0}
# Average differences between the ethnicity groups (mm, from a common mean), after the direction and rough size of
# the international anthropometric comparisons (Farkas et al. 2005, J Craniofac Surg 16:615): wider noses and fuller
# lips in Black faces, a wider face, wider-set eyes and a flatter nose bridge in East Asian faces, a narrow,
# projecting nose and thinner lips in White faces, a long, projecting nose and a marked brow in Middle Eastern faces.
ETHNIC_DIFFERENCE = {
    "Black": {"nose_width": 6.0, "nose_projection": -2.0, "upper_lip": 1.8, "lower_lip": 2.2, "mouth_width": 3.0,
              "eye_spacing": 1.5, "chin_projection": -1.0},
    "East Asian": {"nose_width": 1.5, "nose_projection": -3.0, "face_width": 6.0, "eye_spacing": 2.5,
                   "brow_ridge": -1.5, "eye_width": -1.0, "chin_projection": -1.5, "lower_face_height": -1.5},
    "Hispanic/Latino": {"nose_width": 1.5, "nose_projection": -0.5, "face_width": 2.0, "upper_lip": 0.5,
                        "lower_lip": 0.5},
    "Middle Eastern": {"nose_projection": 3.0, "nose_length": 3.0, "brow_ridge": 1.5, "face_width": -1.5,
                       "lower_face_height": 2.0},
    "South Asian": {"nose_width": 1.0, "nose_projection": 0.5, "upper_lip": 0.6, "lower_lip": 0.6,
                    "face_width": -1.5, "eye_width": 0.5},
    "White": {"nose_width": -3.5, "nose_projection": 2.5, "upper_lip": -0.8, "lower_lip": -1.0, "brow_ridge": 1.5,
              "face_width": -3.0, "eye_spacing": -1.5, "chin_projection": 1.5},
}
# Person-to-person spread (standard deviation, mm) of each measure beyond the random PCA draw.
FEATURE_SPREAD = {"jaw_width": 5.0, "face_width": 4.0, "lower_face_height": 4.0, "chin_height": 2.0,
                  "chin_projection": 2.0, "brow_ridge": 1.5, "brow_height": 2.0, "nose_width": 2.5,
                  "nose_length": 3.0, "nose_projection": 2.5, "mouth_width": 3.0, "upper_lip": 1.0,
                  "lower_lip": 1.2, "eye_width": 1.2, "eye_spacing": 2.0, "cheek_projection": 2.0}


def measure_matrix(face_model: FaceModel, num_components: int = 100) -> np.ndarray:
    """(M, K): how much each of `MEASURES` changes (mm) per standard deviation of each identity component."""
    basis = face_model.identity_basis[:num_components][:, face_model.landmarks]  # (K, 68, 3)
    return np.stack([sum(sign * basis[:, lm, axis] for lm, axis, sign in terms) for terms in MEASURES.values()])


def measure_solver(face_model: FaceModel, num_components: int = 100, ridge: float = 4.0) -> np.ndarray:
    """(K, M): the smallest identity-coefficient change (ridge least squares) that moves the measures by a target
    (mm). Sex, age and feature differences are expressed in the model's own identity basis this way. Computed once
    per face model and process."""

    def solve():
        a = _measures(face_model, num_components).astype(np.float64)
        return np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T)

    return face_model.derived(("solver", num_components, ridge), solve)


def _measures(face_model: FaceModel, num_components: int) -> np.ndarray:
    """`measure_matrix`, computed once per face model and process."""
    return face_model.derived(("measures", num_components), lambda: measure_matrix(face_model, num_components))


def measure_vector(changes: dict[str, float]) -> np.ndarray:
    unknown = set(changes) - set(MEASURES)
    if unknown:
        raise ValueError(f"unknown face measures {sorted(unknown)}; known: {', '.join(MEASURES)}")
    return np.array([changes.get(name, 0.0) for name in MEASURES])


def demographic_identity(
    face_model: FaceModel, male: bool, rng: np.random.Generator, age_factor: float = 0.0, spread: float = 1.3,
    ethnicity: str | None = None,
) -> np.ndarray:
    """Identity coefficients: a N(0, spread^2) draw, plus (through `measure_solver`) a share of the sex difference
    toward the identity's sex with a person-to-person strength, the age change, random feature-level differences
    (nose, eyes, lips, jaw, chin) and, for a named `ethnicity`, its group's average differences, also with a
    person-to-person strength (groups overlap)."""
    solver = measure_solver(face_model)
    coefficients = sample_identity(rng, num_components=solver.shape[0], scale=spread)
    strength = float(np.clip(rng.normal(1.0, 0.3), 0.3, 1.8))
    # the model's mean face sits nearer the male average than the female one, so women move further from it; the
    # sizes are set so that the sexes differ by what surveys report relative to the spread within each sex (Cohen's
    # d of about 1.5 for jaw and face width), since this identity space spreads wider than real faces do
    sex = (0.6 if male else -1.8) * strength * measure_vector(SEX_DIFFERENCE)
    age = age_factor * measure_vector(AGE_CHANGE)
    features = measure_vector({name: rng.normal(0.0, 1.5) * spread for name, spread in FEATURE_SPREAD.items()})
    # the ridge solver reaches about 60% of a target, so the group differences are scaled up to reach their size
    group = measure_vector(ETHNIC_DIFFERENCE[ethnicity]) * float(rng.uniform(0.8, 2.0)) if ethnicity else 0.0
    coefficients = coefficients + solver @ (sex + age + features + group)
    return keep_profile(face_model, coefficients, solver)


def keep_profile(face_model: FaceModel, coefficients: np.ndarray, solver: np.ndarray) -> np.ndarray:
    """`coefficients` changed so that the nose tip stands `NOSE_LEAD_MM` in front of the upper lip (extreme draws
    otherwise push the lips past the nose), through `measure_solver`, which holds the other measures where they are.
    The limits are soft: leads keep their order and none piles up at a limit."""
    terms = MEASURES["nose_lead"]
    row = _measures(face_model, len(coefficients))[list(MEASURES).index("nose_lead")]
    mean = float(sum(sign * face_model.neutral[face_model.landmarks[lm], axis] for lm, axis, sign in terms))
    low, high = NOSE_LEAD_MM
    knee = (high - low) / 4
    coefficients = coefficients.astype(np.float64)
    lead = mean + float(row @ coefficients)
    if lead < low + knee:
        wanted = low + knee * np.exp((lead - low - knee) / knee)
    elif lead > high - knee:
        wanted = high - knee * np.exp((high - knee - lead) / knee)
    else:
        return coefficients.astype(np.float32)
    for _ in range(10):  # the ridge solver reaches part of a target per step
        lead = mean + float(row @ coefficients)
        if abs(wanted - lead) < 0.05:
            break
        coefficients = coefficients + solver @ measure_vector({"nose_lead": wanted - lead})
    return coefficients.astype(np.float32)


# The sag (mm) at which the age hollows reach their full depth (`_hollows_at_90`); most people of 80-90 sag 6-10 mm.
HOLLOWS_AT_SAG_MM = 6.0
# Within about this distance (mm) of a mouth corner the jowls' sag fades out, so old mouths do not frown by default.
MOUTH_KEPT_MM = 9.0
# The upper lids hood by a third of the sag up to this (mm), so the oldest neutral eyes stay open (AU43 reads).
MAX_HOODING_MM = 3.5
# The cheek folds over the nasolabial line at most this many times its full depth (`_hollows_at_90`), whatever the
# sag and the person's mix.
MAX_FOLD_DEPTH = 1.5
# The parts of the face that age, each by its own amount in each person (`age_sag_offsets`'s `mix`): people differ
# in where they hollow, fold and droop, not only in how far.
AGEING_PARTS = ("jowls", "hooding", "temples", "cheeks", "tear_troughs", "brows", "nasolabial_folds", "bags",
                "nose_tip", "chin", "ear_lobes")


def age_sag_offsets(face_model: FaceModel, sag_mm: float, mix: Mapping[str, float] | None = None) -> np.ndarray:
    """The geometric part of ageing (V, 3), in mm: downward sag of the lower cheeks and jowls (`sag_mm` at its
    strongest, beside the mouth), hooding of the upper lids, and in proportion hollow temples, cheeks and tear
    troughs, drooping outer brows and nose tip, a lax neck under the chin and longer ear lobes. `mix` scales each
    part (names in `AGEING_PARTS`, 1 where not given)."""
    offsets = np.zeros_like(face_model.neutral)
    if sag_mm <= 0:
        return offsets
    mix = dict(mix or {})
    unknown = set(mix) - set(AGEING_PARTS)
    if unknown:
        raise ValueError(f"unknown ageing parts {sorted(unknown)}; known: {', '.join(AGEING_PARTS)}")
    mix = {part: float(mix.get(part, 1.0)) for part in AGEING_PARTS}
    lm = face_model.neutral[face_model.landmarks]
    face = face_model.region("face")
    p = face_model.neutral[face]
    weight = np.zeros(len(face), dtype=np.float32)
    keep = np.zeros(len(face), dtype=np.float32)
    for corner, jaw in ((lm[48], lm[5]), (lm[54], lm[11])):  # one jowl each side, toward the jaw from the mouth corner
        centre = corner + 0.6 * (jaw - corner)
        weight += np.exp(-np.sum((p - centre) ** 2, axis=1) / (2 * 16.0**2))
        keep = np.maximum(keep, np.exp(-np.sum((p - corner) ** 2, axis=1) / (2 * MOUTH_KEPT_MM**2)))
    # the mouth's corners stay where they are: sag alone turns no mouth into a frown
    lips = np.exp(-np.sum(((p - (lm[51] + lm[57]) / 2) / (abs(lm[54, 0] - lm[48, 0]) / 2 + 4, 12.0, 30.0)) ** 2, axis=1))
    offsets[face, 1] = -sag_mm * mix["jowls"] * np.clip(weight, 0, 1) * (1 - np.maximum(keep, lips))
    # hooded upper lids: the skin between brow and lid folds down over the lid, most at the outer corner; it moves
    # forward as it drops so it stays in front of the eyeball
    droop = np.zeros(len(face), dtype=np.float32)
    for inner, outer in ((lm[38], lm[37]), (lm[43], lm[44])):
        for anchor, strength in ((inner, 0.6), (outer, 1.0)):
            centre = anchor + (0.0, 4.0, 0.0)
            droop += strength * np.exp(-np.sum((p - centre) ** 2, axis=1) / (2 * 4.5**2))
    droop = min(0.33 * sag_mm * mix["hooding"], MAX_HOODING_MM) * np.clip(droop, 0, 1)
    offsets[face, 1] -= droop
    offsets[face, 2] += 0.5 * droop
    parts = face_model.derived(("hollows",), lambda: _hollows_at_90(face_model))
    depth = {part: sag_mm / HOLLOWS_AT_SAG_MM * mix[part] for part in parts}
    depth["nasolabial_folds"] = min(depth["nasolabial_folds"], MAX_FOLD_DEPTH)  # a fold, not a caricature's ridge
    return offsets + sum(depth[part] * parts[part] for part in parts)


def neck_offsets(face_model: FaceModel, male: bool) -> np.ndarray:
    """The neck's build (V, 3), in mm: about 7% wider and deeper in men and narrower in women, and in men the
    laryngeal prominence (Adam's apple) at the front. Computed once per face model and sex."""
    return face_model.derived(("neck", male), lambda: _neck_build(face_model, male))


def _neck_build(face_model: FaceModel, male: bool) -> np.ndarray:
    mean = face_model.neutral.astype(np.float64)
    lm = mean[face_model.landmarks]
    head = face_model.region("face", "head_and_neck")
    p = mean[head]
    chin = lm[8]
    # the neck band: from under the jaw to its base, fading in and out, behind the chin
    band = smoothstep(chin[1] - 8, chin[1] - 20, p[:, 1]) * smoothstep(chin[1] - 62, chin[1] - 45, p[:, 1])
    band *= smoothstep(chin[2] - 20, chin[2] - 35, p[:, 2])
    offsets = np.zeros_like(mean)
    offsets[head, 0] = (0.07 if male else -0.06) * p[:, 0] * band
    offsets[head, 2] = (0.07 if male else -0.06) * p[:, 2] * band
    if male:
        front = np.array([0.0, chin[1] - 30.0, float(p[np.abs(p[:, 1] - (chin[1] - 30)) < 3, 2].max())])
        offsets[head, 2] += 3.5 * np.exp(-np.sum((p - front) ** 2 * (1.0, 0.5, 1.0), axis=1) / (2 * 5.0**2))
    return offsets.astype(np.float32)


def identity_extras(face_model: FaceModel, sag_mm: float, male: bool, ageing: Mapping[str, float] | None = None
                    ) -> np.ndarray:
    """The offsets (V, 3) that belong to an identity beyond its PCA shape: ageing (`age_sag_offsets`) and the
    neck's build (`neck_offsets`), with the eyelashes moved as their lids; `ageing` is the person's mix of ageing
    parts. The same for its neutral and every expression, so never in the heatmap."""
    offsets = age_sag_offsets(face_model, sag_mm, ageing) + neck_offsets(face_model, male)
    lashes, lids = face_model.derived(("lash_anchors",), lambda: lash_anchors(face_model))
    offsets[lashes] = offsets[lids]  # the lashes go where their lids go
    return offsets


def _hollows_at_90(face_model: FaceModel) -> dict[str, np.ndarray]:
    """Offsets (V, 3) of fat loss and laxity per ageing part, at full depth (a sag of `HOLLOWS_AT_SAG_MM`, an
    average face of about 80; `age_sag_offsets` scales them). Computed once per face model."""
    mean = face_model.neutral.astype(np.float64)
    lm = mean[face_model.landmarks]
    normals = vertex_normals(mean, face_model.faces)
    head = face_model.region("face", "head_and_neck")
    p = mean[head]
    parts = {part: np.zeros((len(head), 3)) for part in AGEING_PARTS[2:]}

    def bump(centre, radius):
        return np.exp(-np.sum((p - centre) ** 2, axis=1) / (2 * radius**2))[:, None]

    inward, down = -normals[head], np.array([0.0, -1.0, 0.0])
    for side, (jaw_top, brow_end, mouth, lower_lid) in ((-1, (0, 17, 48, (40, 41))), (1, (16, 26, 54, (46, 47)))):
        temple = lm[jaw_top] + (-side * 3.0, 16.0, 8.0)
        cheek = (lm[2 if side < 0 else 14] + lm[mouth]) / 2 + (0.0, 6.0, 0.0)
        trough = mean[face_model.landmarks[list(lower_lid)]].mean(axis=0) + (0.0, -7.0, 0.0)
        parts["temples"] += 3.5 * bump(temple, 12.0) * inward
        parts["cheeks"] += 3.0 * bump(cheek, 13.0) * inward
        parts["tear_troughs"] += 1.5 * bump(trough, 5.0) * inward
        parts["brows"] += 3.0 * bump(lm[brow_end], 9.0) * down
        # the cheek's fat sags against the nasolabial line: a groove from the nose wing to beside the mouth corner,
        # with the cheek bulging over it on the outer side
        across, along = _fold_coordinates(p, lm[31 if side < 0 else 35] + (side * 3.0, 2.0, 0.0),
                                          lm[mouth] + (side * 9.0, -8.0, 0.0), side)
        parts["nasolabial_folds"] += (1.8 * np.exp(-((across - 6.0) ** 2) / (2 * 4.0**2))
                                      - 1.0 * np.exp(-(across**2) / (2 * 1.6**2)))[:, None] * along[:, None] * normals[head]
        # bags: the lower lid's fat bulges forward above the tear trough
        bag = mean[face_model.landmarks[list(lower_lid)]].mean(axis=0) + (side * 2.0, -3.5, 0.0)
        parts["bags"] += 2.5 * bump(bag, 3.5) * normals[head]
    parts["nose_tip"] += 2.5 * bump(lm[30], 8.0) * down
    parts["chin"] += bump(lm[8] + (0.0, -20.0, -25.0), 18.0) * (0.0, -5.0, 2.0)  # a lax neck under the chin
    for lobe in lobe_vertices(face_model):
        parts["ear_lobes"] += 4.0 * bump(mean[lobe] + (0.0, 2.0, 0.0), 9.0) * down
    out = {}
    for part, values in parts.items():
        offsets = np.zeros_like(face_model.neutral)
        offsets[head] = values
        out[part] = offsets
    return out


def _fold_coordinates(p: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """For points `p` (N, 3) seen from the front, the signed distance (mm) across the line from `start` to `end`
    (positive toward the `side` of the face, -1 left, +1 right) and a weight that is 1 along the line, fades past
    its ends and is 0 behind the face."""
    direction = (end - start)[:2]
    length = float(np.linalg.norm(direction))
    direction = direction / length
    offset = p[:, :2] - start[:2]
    t = offset @ direction / length
    across = offset @ np.array([direction[1], -direction[0]])
    across *= np.sign(np.array([direction[1], -direction[0]])[0]) * side  # positive toward the side of the face
    along = smoothstep(-0.15, 0.1, t) * smoothstep(1.2, 0.9, t) * smoothstep(start[2] - 25.0, start[2] - 10.0, p[:, 2])
    return across, along

