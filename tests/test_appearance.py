"""Who the faces are: the skin relief, sex / age / feature shape, balance, clothing, beards, lashes and brows (hair
and head coverings are in test_hair.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from generation.demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS, identity_demographics
from generation.pipeline import GenerationConfig, PainFaceGenerator, identity_spec
from generation.views import View
from generation.face.rig import AGE_CHANGE, MEASURES, SEX_DIFFERENCE, measure_matrix, measure_solver, measure_vector

FRONTAL = View("frontal", 0.0, 0.0)


@pytest.fixture(scope="module")
def generator(face_model, renderer):
    return PainFaceGenerator(GenerationConfig(num_identities=4, expressions_per_identity=1, image_size=128), face_model,
                             renderer=renderer)


def test_skin_relief_is_seeded_and_shades_old_faces_more(generator, face_model):
    spec = identity_spec(generator.config, face_model, 0)
    young = replace(spec.appearance, age_factor=0.0, skin_age=0.0)
    old = replace(spec.appearance, age_factor=1.0, skin_age=1.0)
    rng = lambda seed=0: np.random.default_rng(seed)  # noqa: E731
    young_texture, old_texture = generator.texturer(young, rng()), generator.texturer(old, rng())
    assert np.array_equal(old_texture.normal, generator.texturer(old, rng()).normal)
    assert not np.array_equal(old_texture.normal, generator.texturer(old, rng(1)).normal)  # the rng it is given
    flat = np.array([128, 128, 255])
    tilt = lambda t: np.abs(t.normal.astype(int) - flat).sum(axis=-1)  # noqa: E731
    assert tilt(old_texture).mean() > 1.5 * tilt(young_texture).mean()
    neutral = face_model.neutral
    with_relief = generator.renderer.render(neutral, FRONTAL, texture=old_texture)
    without = generator.renderer.render(neutral, FRONTAL, texture=replace(old_texture, normal=None))
    difference = np.abs(with_relief.image.astype(int) - without.image.astype(int)).sum(axis=-1)
    assert difference[with_relief.mask].mean() > 1.0  # the wrinkles catch the light: shading, not paint


def test_one_age_model_sets_the_wrinkles_painted_lines_and_sag(generator, face_model):
    """The skin's age (the age factor times the person's ageing rate) sets the sag and every wrinkle's depth, and the
    painted lines are the relief's own: where the albedo darkens, the normal map creases too."""
    from generation.sampling.appearance import AGEING_RATE_SPREAD, LINE_FAMILIES, sample_appearance

    for index in range(40):
        demographics = identity_demographics(0, index)
        a = sample_appearance(demographics, np.random.default_rng(index))
        assert a.sag_mm == pytest.approx(12.0 * a.skin_age**1.5)
        lowest, highest = (1 - AGEING_RATE_SPREAD) * a.age_factor, min(1.0, (1 + AGEING_RATE_SPREAD) * a.age_factor)
        assert lowest - 1e-9 <= a.skin_age <= highest + 1e-9
        assert len(a.line_depths) == len(LINE_FAMILIES) and np.mean(a.line_depths) == pytest.approx(1.0)
    spec = identity_spec(generator.config, face_model, 0)
    old = replace(spec.appearance, age_factor=1.0, skin_age=1.0)
    unlined = replace(old, line_depths=(0.0,) * len(LINE_FAMILIES))
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    lined_texture, unlined_texture = generator.texturer(old, rng()), generator.texturer(unlined, rng())
    darker = (unlined_texture.albedo.astype(int) - lined_texture.albedo.astype(int)).sum(axis=-1) > 6
    creased = np.abs(unlined_texture.normal.astype(int) - lined_texture.normal.astype(int)).sum(axis=-1) > 2
    assert darker.sum() > 500
    near_a_crease = ndimage.binary_dilation(creased, iterations=2)
    assert near_a_crease[darker].mean() > 0.95  # painted only where the relief has a line
    assert darker[creased].mean() > 0.1  # the fine lines among them (the folds and bags are left to the shading)


def test_old_skin_has_fine_lines_on_the_cheeks_and_over_the_upper_lip_only(generator):
    from generation.texture.procedural import fine_lines

    texturer = generator.texturer
    pos, lm, masks = np.nan_to_num(texturer.atlas.position), texturer.landmarks, texturer._masks
    x, y = pos[..., 0], pos[..., 1]
    depth = {"cheek": 1.0, "upper_lip": 1.0}
    assert not fine_lines(masks, pos, lm, 0.0, depth, np.random.default_rng(0)).any()  # young skin has none
    old = fine_lines(masks, pos, lm, 1.0, depth, np.random.default_rng(0))
    assert np.array_equal(old, fine_lines(masks, pos, lm, 1.0, depth, np.random.default_rng(0)))  # seeded
    assert not np.array_equal(old, fine_lines(masks, pos, lm, 1.0, depth, np.random.default_rng(1)))
    lined = old > 0.02
    upper_lip = (np.abs(x) < abs(lm[48, 0])) & (y > lm[50:53, 1].max() - 1) & (y < lm[33, 1])
    cheeks = (np.abs(x) > abs(lm[31, 0]) + 4) & (y < lm[41, 1] - 6) & (y > lm[5, 1])
    assert lined[upper_lip].sum() > 10 and lined[cheeks].sum() > 50
    assert (upper_lip | cheeks)[lined].all()  # nowhere else: not the forehead, the eyes, the lips or the neck
    younger = fine_lines(masks, pos, lm, 0.5, depth, np.random.default_rng(0))
    assert (old[lined] > younger[lined]).all()  # deeper with age


def test_expressions_crease_the_skin_where_the_face_folds_and_only_in_the_shading(generator, face_model):
    from generation.face.rig import pose_face

    spec = identity_spec(generator.config, face_model, 0)
    texture = generator.texturer(replace(spec.appearance, age_factor=0.5, beard_style=""), np.random.default_rng(0))
    assert texture.expressing({}) is texture and texture.expressing({"AU43": 1.0}) is texture  # nothing creases
    atlas = generator.texturer.atlas
    pos, lm = np.nan_to_num(atlas.position), generator.texturer.landmarks
    changed = lambda aus: np.abs(texture.expressing(aus).normal.astype(int) - texture.normal).sum(-1) > 0  # noqa: E731
    frown, nose = changed({"AU4": 5.0}), changed({"AU9": 5.0})
    brows = (np.abs(pos[..., 0]) < 12) & (pos[..., 1] > lm[27, 1] - 4) & (pos[..., 1] < lm[17:27, 1].max() + 12)
    assert frown.sum() > 50 and brows[frown].mean() > 0.95  # frown lines between the brows and nowhere else
    assert nose.sum() > 50 and (pos[nose][:, 1] < lm[27, 1]).mean() > 0.95  # below the root of the nose
    weak, strong = (np.abs(texture.expressing({"AU4": i}).normal.astype(int) - texture.normal).sum() for i in (1, 5))
    assert strong > 2 * weak > 0  # deeper with intensity
    flat = generator.texturer(replace(spec.appearance, age_factor=0.5), np.random.default_rng(0))
    no_relief = PainFaceGenerator(replace(generator.config, appearance_detail=False), face_model,
                                  renderer=generator.renderer).texturer(spec.appearance, np.random.default_rng(0))
    assert flat.expressing({"AU4": 5.0}) is not flat and no_relief.expressing({"AU4": 5.0}) is no_relief

    # rendered: the creased face differs from the same pose with the rest relief only around the folds, and the
    # heatmap (the skin's motion) is the same
    aus = {"AU4": 5.0, "AU9": 5.0}
    pain = pose_face(face_model, spec.coefficients, aus)
    displacement = np.linalg.norm(pain - pose_face(face_model, spec.coefficients), axis=1)
    rest = generator.renderer.render(pain, FRONTAL, displacement, texture=texture)
    creased = generator.renderer.render(pain, FRONTAL, displacement, texture=texture.expressing(aus))
    difference = np.abs(creased.image.astype(int) - rest.image.astype(int)).sum(-1)
    rows, cols = np.nonzero(difference > 6)
    eye_line, chin = creased.landmarks_2d[[36, 45], 1].mean(), creased.landmarks_2d[8, 1]
    assert len(rows) > 20 and (rows < (eye_line + chin) / 2).mean() > 0.95  # brows and nose, not the chin
    assert np.array_equal(creased.heatmap, rest.heatmap)
    again = generator.renderer.render(pain, FRONTAL, displacement, texture=texture)
    assert np.array_equal(again.image, rest.image)  # switching normal maps back and forth is exact


def test_creases_recompute_only_their_window_with_the_whole_atlas_result(generator):
    from generation.texture.procedural import Creases, normal_map, surface_frame

    frame = surface_frame(generator.texturer.atlas)
    rng = np.random.default_rng(0)
    rest = rng.random(generator.texturer.atlas.region.shape).astype(np.float32)
    for box in ((slice(40, 90), slice(100, 180)), (slice(0, 30), slice(0, 40)), (slice(-20, None), slice(-30, None))):
        crease = np.zeros_like(rest)
        crease[box] = rng.random(crease[box].shape)
        creases = Creases.around(rest, {"AU4": crease, "AU9": 0 * crease}, frame)
        assert creases.rest.size < rest.size / 4
        assert np.array_equal(creases.normal_map(normal_map(frame, rest), {"AU4": 2.0, "AU9": 5.0}),
                              normal_map(frame, rest + 0.4 * crease))


def test_measure_solver_reaches_the_sex_and_age_targets(face_model):
    a, solver = measure_matrix(face_model), measure_solver(face_model)
    for target in (SEX_DIFFERENCE, AGE_CHANGE):
        wanted = measure_vector(target)
        achieved = a @ (solver @ wanted)
        assert np.corrcoef(achieved, wanted)[0, 1] > 0.9
    jaw = list(MEASURES).index("jaw_width")
    assert (a @ (solver @ measure_vector(SEX_DIFFERENCE)))[jaw] > 5.0
    with pytest.raises(ValueError, match="unknown face measures"):
        measure_vector({"jaw": 1.0})


def test_generated_men_and_women_differ_in_build_as_much_as_surveys_report(face_model):
    config = GenerationConfig(num_identities=120)
    a = measure_matrix(face_model)
    names = list(MEASURES)
    measures = {"male": [], "female": []}
    for index in range(120):
        spec = identity_spec(config, face_model, index)
        measures[spec.demographics.gender].append(a @ spec.coefficients[: a.shape[1]])
    men, women = (np.array(measures[sex]) for sex in ("male", "female"))
    spread = np.sqrt((men.var(axis=0) + women.var(axis=0)) / 2)
    d = (men.mean(axis=0) - women.mean(axis=0)) / spread  # Cohen's d, relative to the spread within each sex
    for name in ("jaw_width", "lower_face_height", "chin_height"):
        assert d[names.index(name)] > 1.2, (name, d[names.index(name)])
    assert d[names.index("face_width")] > 0.9 and d[names.index("lower_lip")] < 0


def test_every_prefix_is_balanced_in_each_marginal():
    for seed in (0, 11):
        people = [identity_demographics(seed, index) for index in range(130)]
        assert len({(d.age_group, d.gender, d.ethnicity) for d in people[:60]}) == 60
        for n in range(1, len(people) + 1):
            for attribute, values in (("age_group", AGE_GROUP_NAMES), ("gender", GENDERS), ("ethnicity", ETHNICITIES)):
                counts = Counter(getattr(d, attribute) for d in people[:n])
                assert max(counts[v] for v in values) - min(counts[v] for v in values) <= 1, (seed, n, attribute)


def test_camera_roll_and_distance_move_the_true_landmarks(renderer, face_model):
    base = renderer.render(face_model.neutral, FRONTAL, rgb=False).landmarks_2d
    rolled = renderer.render(face_model.neutral, FRONTAL.jittered(10.0, 1.0), rgb=False).landmarks_2d
    nearer = renderer.render(face_model.neutral, FRONTAL.jittered(0.0, 0.9), rgb=False).landmarks_2d
    centre = renderer.image_size / 2
    angle = lambda points: np.degrees(np.arctan2(*(points[45] - points[36])[::-1]))  # noqa: E731
    assert abs((angle(base) - angle(rolled)) - 10.0) < 0.5  # counter-clockwise in the image (y down)
    spread = lambda points: np.linalg.norm(points - centre, axis=1).mean()  # noqa: E731
    assert spread(nearer) > 1.05 * spread(base)


def test_identities_get_their_own_camera_and_fill_light(face_model):
    config = GenerationConfig(num_identities=4)
    specs = [identity_spec(config, face_model, index) for index in range(4)]
    assert len({spec.camera for spec in specs}) == 4
    assert all(abs(roll) <= 3 and 0.93 <= scale <= 1.07 for roll, scale in (spec.camera for spec in specs))
    assert identity_spec(config, face_model, 2).camera == specs[2].camera


def test_clothing_covers_the_chest_below_the_neckline_only(generator, face_model):
    from generation.sampling.appearance import NECKLINES

    spec = identity_spec(generator.config, face_model, 0)
    texturer = generator.texturer
    pos = np.nan_to_num(texturer.atlas.position)
    lm = face_model.neutral[face_model.landmarks]
    chest = texturer.atlas.region_mask("face", "head_and_neck") & (pos[..., 1] < lm[8, 1] - 85) & (pos[..., 2] > 20)
    face = texturer.atlas.region_mask("face") & (pos[..., 1] > lm[8, 1]) & (pos[..., 2] > lm[0, 2])
    red = replace(spec.appearance, clothing_rgb=(0.9, 0.05, 0.05), neckline="crew")
    blue = replace(red, clothing_rgb=(0.05, 0.05, 0.9))
    a, b = texturer(red, np.random.default_rng(0)), texturer(blue, np.random.default_rng(0))
    differs = np.abs(a.albedo.astype(int) - b.albedo.astype(int)).sum(axis=-1) > 60
    assert differs[chest].mean() > 0.9 and not differs[face].any()
    # a V neckline reaches further down the chest than a crew neck, at the front centre only
    centre = np.array([[0.0, 0.0, 60.0], [60.0, 0.0, 60.0]])
    assert texturer.neckline("v", centre)[0] < texturer.neckline("crew", centre)[0] - 20
    assert set(NECKLINES) == {"crew", "scoop", "v"}


def test_ethnicity_groups_differ_on_average_in_nose_and_lip_measures(face_model):
    """Group differences come from anthropometric surveys, with a person-to-person strength so groups overlap."""
    from generation.face.rig import demographic_identity

    a = measure_matrix(face_model)
    nose, lips = list(MEASURES).index("nose_width"), list(MEASURES).index("lower_lip")

    def measures(ethnicity):
        return np.array([a @ demographic_identity(face_model, True, np.random.default_rng(k), ethnicity=ethnicity)
                         for k in range(30)])

    black, white = measures("Black"), measures("White")
    assert black[:, nose].mean() > white[:, nose].mean() + 5.0
    assert black[:, lips].mean() > white[:, lips].mean() + 1.5
    assert black[:, nose].min() < white[:, nose].max()  # the groups overlap


def test_grown_beards_cover_their_part_of_the_face(generator, face_model):
    from generation.sampling.appearance import BEARDS

    texturer = generator.texturer
    lm = face_model.neutral[face_model.landmarks]
    points = {"above the lip": lm[51] + (0, 3, 0), "chin": lm[8] + (0, 8, 0), "cheek": lm[4] + (8, 6, 0)}
    cover = {style: {name: float(texturer.beard(style, p[None])[0]) for name, p in points.items()} for style in BEARDS}
    assert cover["moustache"] == {"above the lip": 1.0, "chin": 0.0, "cheek": 0.0}
    assert cover["goatee"]["chin"] == 1.0 and cover["goatee"]["cheek"] == 0.0
    assert min(cover["full"].values()) == 1.0
    spec = identity_spec(generator.config, face_model, 0)
    shaven = replace(spec.appearance, beard_style="", beard_density=0.0, hair_rgb=(0.1, 0.08, 0.06), grey_fraction=0.0)
    bearded = replace(shaven, beard_style="full")
    a, b = texturer(shaven, np.random.default_rng(0)), texturer(bearded, np.random.default_rng(0))
    darker = a.albedo.astype(int).sum(-1) - b.albedo.astype(int).sum(-1) > 60
    pos = np.nan_to_num(texturer.atlas.position)
    assert darker[(pos[..., 1] > lm[27, 1]) & texturer.atlas.region_mask("face")].mean() < 0.01  # not above the nose
    assert darker.sum() > 1000
    # the beard draws from its own stream: the layers painted after it (brows, hair cap, clothing) are the same
    brows_and_scalp = texturer.atlas.region_mask("face") & (pos[..., 1] > lm[27, 1])
    stubbled = texturer(replace(shaven, beard_density=0.8), np.random.default_rng(0))
    assert np.array_equal(a.albedo[brows_and_scalp], b.albedo[brows_and_scalp])
    assert np.array_equal(a.albedo[brows_and_scalp], stubbled.albedo[brows_and_scalp])


def test_ageing_hollows_the_temples_and_lowers_the_nose_tip_in_proportion(face_model):
    from generation.face.rig import age_sag_offsets

    assert not age_sag_offsets(face_model, 0.0).any()
    lm = face_model.landmarks
    old, older = age_sag_offsets(face_model, 2.5), age_sag_offsets(face_model, 5.0)
    assert older[lm[30], 1] < -1.5 and older[lm[30], 1] < old[lm[30], 1] < 0  # the nose tip droops
    mean = face_model.neutral
    temple = np.argmin(np.linalg.norm(mean - (mean[lm[16]] + (-3.0, 16.0, 8.0)), axis=1))
    assert older[temple, 0] < -1.5  # the right temple (x > 0) sinks toward the middle of the head
    chin = lm[8]
    assert abs(older[chin]).max() < 3.0  # the chin itself stays nearly where it was


def test_people_age_by_their_own_mix_of_parts(face_model):
    from generation.face.rig import AGEING_PARTS, age_sag_offsets

    lm = face_model.landmarks
    mean = face_model.neutral
    temple = np.argmin(np.linalg.norm(mean - (mean[lm[16]] + (-3.0, 16.0, 8.0)), axis=1))
    plain, hollow = age_sag_offsets(face_model, 6.0), age_sag_offsets(face_model, 6.0, {"temples": 2.0})
    assert hollow[temple, 0] < plain[temple, 0] - 1.0  # deeper temples ...
    assert np.allclose(hollow[lm[30]], plain[lm[30]]) and np.allclose(hollow[lm[8]], plain[lm[8]])  # ... only
    assert np.array_equal(age_sag_offsets(face_model, 6.0, {part: 1.0 for part in AGEING_PARTS}), plain)
    with pytest.raises(ValueError, match="unknown ageing parts"):
        age_sag_offsets(face_model, 6.0, {"dimples": 1.0})
    config = GenerationConfig(num_identities=8)
    mixes = [identity_spec(config, face_model, i).appearance.ageing for i in range(8)]
    assert all(list(m) == list(AGEING_PARTS) and all(0.35 <= w <= 2.2 for w in m.values()) for m in mixes)
    assert len({tuple(m.values()) for m in mixes}) == 8  # each person their own
    assert identity_spec(config, face_model, 3).appearance.ageing == mixes[3]  # seeded


def test_ageing_folds_the_cheek_over_the_nasolabial_line_and_raises_lower_lid_bags(face_model):
    from generation.face.geometry import vertex_normals
    from generation.face.rig import age_sag_offsets

    mean = face_model.neutral.astype(np.float64)
    lm = mean[face_model.landmarks]
    outward = (age_sag_offsets(face_model, 5.0) * vertex_normals(mean, face_model.faces)).sum(axis=1)
    for nostril, corner, lid, side in ((31, 48, (40, 41), -1), (35, 54, (46, 47), 1)):
        start, end = lm[nostril] + (side * 3.0, 2.0, 0.0), lm[corner] + (side * 9.0, -8.0, 0.0)
        middle = (start + end) / 2
        normal_2d = np.array([end[1] - start[1], -(end[0] - start[0])])
        normal_2d *= side * np.sign(normal_2d[0]) / np.linalg.norm(normal_2d)  # toward the side of the face
        front = np.zeros(len(mean), bool)
        front[face_model.region("face", "head_and_neck")] = True
        front &= mean[:, 2] > middle[2] - 10

        def nearest(point):
            return np.argmin(np.linalg.norm(mean[:, :2] - point, axis=1) + 1e3 * ~front)

        groove, cheek = nearest(middle[:2]), nearest(middle[:2] + 6.0 * normal_2d)
        assert outward[cheek] > 1.0 > 0.0 > outward[groove]  # the cheek bulges over a groove
        head = face_model.region("face", "head_and_neck")
        bag = head[np.argmin(np.linalg.norm(mean[head] - (lm[list(lid)].mean(axis=0) + (side * 2.0, -3.5, 0.0)), axis=1))]
        assert outward[bag] > 0.8  # above the tear trough


def test_sag_drops_the_jowls_but_not_the_mouth_corners_and_the_fold_stays_a_fold(face_model):
    """No default frown: at the strongest sag the jowls at the jaw drop by millimetres while the mouth corners stay
    within 0.3 mm; the cheek's fold over the nasolabial line stops growing at `MAX_FOLD_DEPTH`."""
    from generation.face.rig import MAX_FOLD_DEPTH, HOLLOWS_AT_SAG_MM, age_sag_offsets

    lm = face_model.landmarks
    offsets = age_sag_offsets(face_model, 12.0)
    assert offsets[lm[5], 1] < -4.0 and offsets[lm[11], 1] < -4.0  # the jowls at the jaw line
    assert abs(offsets[lm[48], 1]) < 0.3 and abs(offsets[lm[54], 1]) < 0.3  # the mouth corners stay
    capped = HOLLOWS_AT_SAG_MM * MAX_FOLD_DEPTH
    deep = age_sag_offsets(face_model, capped, {"nasolabial_folds": 2.0})
    deeper = age_sag_offsets(face_model, capped, {"nasolabial_folds": 3.0})
    plain = age_sag_offsets(face_model, capped, {"nasolabial_folds": 1.0})
    assert np.allclose(deep, deeper) and np.allclose(deep, plain)  # already at the cap at a mix of 1


def test_necks_are_built_by_sex_and_leave_the_face_alone(face_model):
    from generation.face.rig import identity_extras, neck_offsets

    lm = face_model.neutral[face_model.landmarks]
    men, women = neck_offsets(face_model, True), neck_offsets(face_model, False)
    assert np.abs(men[face_model.landmarks]).max() < 0.05 and np.abs(women[face_model.landmarks]).max() < 0.05
    neck = face_model.region("face", "head_and_neck")
    p = face_model.neutral[neck]
    ring = np.nonzero((np.abs(p[:, 1] - (lm[8, 1] - 35)) < 3) & (np.abs(p[:, 2]) < 20))[0]
    side = neck[ring[np.argmax(p[ring, 0])]]  # the side of the neck, half way down
    assert men[side, 0] > 1.0 and women[side, 0] < -1.0  # wider in men, narrower in women
    throat = np.nonzero((np.abs(p[:, 1] - (lm[8, 1] - 30)) < 3) & (np.abs(p[:, 0]) < 5))[0]
    front = neck[throat[np.argmax(p[throat, 2])]]
    assert men[front, 2] > women[front, 2] + 3.0  # the Adam's apple
    assert np.array_equal(identity_extras(face_model, 0.0, True), men)


def test_profiles_keep_the_nose_in_front_of_the_lips(face_model):
    from generation.face.rig import NOSE_LEAD_MM, keep_profile, measure_solver

    def lead(coefficients):
        lm = face_model.vertices(coefficients, None)[face_model.landmarks]
        return lm[30, 2] - lm[51, 2]

    solver = measure_solver(face_model)
    row = measure_matrix(face_model)[list(MEASURES).index("nose_lead")]
    lips_past_nose = (-40.0 * row / float(row @ row)).astype(np.float32)  # pushes the lead about 40 mm down
    assert lead(lips_past_nose) < 0
    fixed = [lead(keep_profile(face_model, k * lips_past_nose, solver)) for k in (1.0, 0.3, 0.1)]
    assert NOSE_LEAD_MM[0] - 0.3 < fixed[0] < fixed[1] < fixed[2] < 12.0  # soft: order kept, nothing below the floor
    config = GenerationConfig(num_identities=60)
    leads = [lead(identity_spec(config, face_model, index).coefficients) for index in range(60)]
    assert NOSE_LEAD_MM[0] - 0.5 < min(leads) and max(leads) < NOSE_LEAD_MM[1] + 0.5


def test_eyelashes_are_alpha_cut_cards_on_the_lids_that_blink_with_them_and_leave_the_heatmap_alone(renderer,
                                                                                                    face_model):
    from generation import FaceRenderer
    from generation.face.eyelashes import LASH_TEXTURE_SHAPE, lash_cards, lash_texture, strip_grids
    from generation.facs import blendshape_weights

    cards = lash_cards(face_model)
    assert (np.isin(cards.vertices, face_model.region("eyelashes"))).all()
    # three upper strips (5 x 18 quads) and one lower strip cut to 2 x 18 quads, both eyes
    assert len(cards.faces) == 2 * 2 * (3 * 5 + 2) * 18 and len(lash_cards(face_model, 1).faces) == 2 * 2 * (5 + 2) * 18
    assert cards.texcoords.shape == (len(cards.vertices), 2) and cards.texcoords[:, 1].min() == 0
    with pytest.raises(ValueError, match="upper_strips"):
        lash_cards(face_model, 0)
    # the texture: a dense line at the root, separate lashes toward the tips, fewer and thinner lashes cover less
    full = lash_texture(36, 2.8, 1.0, np.random.default_rng(0))[..., 3] / 255
    sparse = lash_texture(16, 1.4, 0.6, np.random.default_rng(0))[..., 3] / 255
    assert full.shape == LASH_TEXTURE_SHAPE and full[-1].min() == 1.0 and full[0].max() < 1  # root row last
    assert 0.05 < (full[LASH_TEXTURE_SHAPE[0] // 2] > 0.5).mean() < 0.6  # gaps between the lashes
    assert sparse.mean() < 0.6 * full.mean()
    lm = face_model.neutral[face_model.landmarks]
    for side, upper, grid in strip_grids(face_model):
        lid = lm[[43, 44] if side == "left" else [37, 38]] if upper else lm[[46, 47] if side == "left" else [40, 41]]
        roots, tips = face_model.neutral[grid[0]], face_model.neutral[grid[-1]]
        assert np.linalg.norm(roots.mean(axis=0) - lid.mean(axis=0)) < 4.0  # rooted on their own lid
        assert np.linalg.norm(tips - roots, axis=1).mean() > 3.0  # and standing off it
        reach = (tips - roots).mean(axis=0)
        if upper:
            assert reach[2] > 5.0  # upper lashes reach out in front of the eye, lower ones down
        else:
            assert reach[1] < -3.0 and 0 < reach[2] < 5.0
    # they close with the eye (AU43), as rigged in the model
    closed = face_model.vertices(None, blendshape_weights({"AU43": 1}))
    upper_tips = np.concatenate([grid[-1] for _, upper, grid in strip_grids(face_model) if upper])
    assert (face_model.neutral[upper_tips, 1] - closed[upper_tips, 1]).mean() > 5.0

    displacement = np.linalg.norm(closed - face_model.neutral, axis=1).astype(np.float32)
    side = View("left", 35.0, 5.0)
    with FaceRenderer(face_model, image_size=128, eyelashes=False) as bare_renderer:
        assert not bare_renderer.eyelashes and renderer.eyelashes
        for vertices in (face_model.neutral, closed):
            bare = bare_renderer.render(vertices, side, displacement=displacement)
            lashed = renderer.render(vertices, side, displacement=displacement)
            # the image changes around the eyes only
            changed = np.abs(lashed.image.astype(int) - bare.image.astype(int)).sum(axis=-1) > 30
            eyes = bare.landmarks_2d[36:48]
            rows, cols = np.nonzero(changed)
            assert len(rows) > 5
            assert cols.min() > eyes[:, 0].min() - 8 and cols.max() < eyes[:, 0].max() + 8
            assert rows.min() > eyes[:, 1].min() - 10 and rows.max() < eyes[:, 1].max() + 8
            # fine hairs the skin shows through: the mask and the heatmap are the skin's, the landmarks the true
            # projections
            assert np.array_equal(lashed.mask, bare.mask) and np.array_equal(lashed.heatmap, bare.heatmap)
            assert np.array_equal(lashed.landmarks_2d, bare.landmarks_2d)


def test_lashes_move_with_their_aged_lids_and_show_mascara_and_age(face_model):
    from generation.face.eyelashes import lash_anchors
    from generation.face.rig import identity_extras

    offsets = identity_extras(face_model, 12.0, male=False)
    lashes, lids = lash_anchors(face_model)
    assert np.abs(offsets[lids]).max() > 1.0  # the hooded lids sag ...
    assert np.array_equal(offsets[lashes], offsets[lids])  # ... and carry their lashes with them

    specs = [identity_spec(GenerationConfig(num_identities=40), face_model, i) for i in range(40)]
    again = identity_spec(GenerationConfig(num_identities=40), face_model, 7).appearance
    assert again == specs[7].appearance  # seeded
    for spec in specs:
        a = spec.appearance
        assert a.lash_strips == 3 if a.makeup > 0 else a.lash_strips in (1, 2)
    assert {s.appearance.lash_strips for s in specs} == {1, 2, 3}
    luminance = lambda rgb: float(np.dot(rgb, (0.3, 0.59, 0.11)))  # noqa: E731
    a = replace(specs[0].appearance, hair_rgb=(0.1, 0.08, 0.06), skin_rgb=(0.8, 0.6, 0.5), grey_fraction=0.0)
    natural, mascara = replace(a, makeup=0.0, age_factor=0.0), replace(a, makeup=1.0, age_factor=0.0)
    old = replace(a, makeup=0.0, age_factor=1.0, grey_fraction=1.0)
    assert luminance(mascara.lash_rgb) < luminance(natural.lash_rgb) < luminance(old.lash_rgb)
    count, width, length = natural.lash_fringe  # lashes thin with age, mascara thickens them
    assert old.lash_fringe[0] < count < mascara.lash_fringe[0] and old.lash_fringe[1] < width < mascara.lash_fringe[1]
    assert replace(natural, male=True).lash_fringe[2] < length
    # the generator's renderer draws them with the appearance details only
    for detail in (True, False):
        config = GenerationConfig(num_identities=1, image_size=64, appearance_detail=detail)
        generator = PainFaceGenerator(config, face_model)
        try:
            assert generator.renderer.eyelashes is detail
        finally:
            generator.close()


def test_eyebrows_take_each_persons_shape_and_change_only_the_brows(generator, face_model):
    from generation.sampling.appearance import BrowShape
    from generation.texture.procedural import brow_line

    lm = generator.texturer.landmarks
    plain = brow_line(lm, "right", BrowShape(taper=0.0))
    assert np.allclose(plain[[0, -1]], lm[[21, 17]])  # on the landmarks, inner end first
    shaped = brow_line(lm, "right", BrowShape(lift=1.0, arch=3.0, peak=0.6, tail_drop=2.0))
    rise = shaped[:, 1] - plain[:, 1]
    assert abs(rise[0] - 1.0 - 3.0 * np.exp(-4)) < 1e-6 and np.argmax(rise) in (4, 5)  # lifted, arched at the peak
    assert rise[-1] < rise[0] - 1.0  # the tail drops
    shorter = brow_line(lm, "left", BrowShape(start=0.1, end=0.9))
    full = brow_line(lm, "left", BrowShape())
    assert shorter[0, 0] > full[0, 0] and shorter[-1, 0] < full[-1, 0]  # starts later and stops sooner

    specs = [identity_spec(GenerationConfig(num_identities=60), face_model, i) for i in range(60)]
    again = identity_spec(GenerationConfig(num_identities=60), face_model, 5).appearance
    assert again.brows == specs[5].appearance.brows  # seeded
    brows = [s.appearance.brows for s in specs]
    assert len({b.lift for b in brows}) == 60  # every person's own
    lift = lambda male: np.mean([b.lift for b, s in zip(brows, specs) if s.appearance.male == male])  # noqa: E731
    arch = lambda male: np.mean([b.arch for b, s in zip(brows, specs) if s.appearance.male == male])  # noqa: E731
    assert lift(True) < lift(False) - 1.0 and arch(True) < arch(False) - 1.0  # men's sit lower and run straighter

    a = replace(specs[0].appearance, hair_rgb=(0.1, 0.08, 0.06), grey_fraction=0.0)
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    one = generator.texturer(replace(a, brows=BrowShape()), rng()).albedo.astype(int)
    other = generator.texturer(replace(a, brows=BrowShape(lift=2.0, arch=3.0, tail_drop=2.0)), rng()).albedo
    changed = np.abs(one - other.astype(int)).sum(axis=-1) > 0
    assert changed.sum() > 50
    window = np.zeros(changed.shape, bool)
    window.flat[generator.texturer._masks["brow_window"]] = True
    assert window[changed].all()  # nowhere but around the brows


def test_skin_shines_by_the_persons_sheen_in_the_t_zone_and_lips_hair_and_cloth_keep_their_own_roughness(
        generator, face_model):
    from generation.render import SKIN_ROUGHNESS
    from generation.texture.procedural import CLOTH_ROUGHNESS, LIP_ROUGHNESS, SHEEN_OVERALL

    specs = [identity_spec(GenerationConfig(num_identities=60), face_model, i) for i in range(60)]
    sheens = [s.appearance.skin_sheen for s in specs]
    assert identity_spec(GenerationConfig(num_identities=60), face_model, 7).appearance.skin_sheen == sheens[7]
    assert len(set(sheens)) == 60 and 0.2 <= min(sheens) and max(sheens) <= 1.0  # seeded, every person's own

    texturer = generator.texturer
    masks, pos = texturer._masks, np.nan_to_num(texturer.atlas.position)
    lm = face_model.neutral[face_model.landmarks]
    def near(point):  # the skin texels within 2.5 mm of the skin point nearest `point`
        distance = np.where(masks["skin"], np.linalg.norm(pos - point, axis=-1), np.inf)
        return distance < distance.min() + 2.5

    nose, cheek = near(lm[30]), near((lm[3] + lm[48]) / 2 + (0.0, 0.0, 15.0))
    chest = masks["skin"] & (pos[..., 1] < lm[8, 1] - 85) & (pos[..., 2] > 20)
    a = replace(specs[0].appearance, beard_style="", beard_density=0.0, makeup=0.0, lipstick=0.0, age_factor=0.0)
    matte = texturer(replace(a, skin_sheen=0.2), np.random.default_rng(0))
    oily = texturer(replace(a, skin_sheen=1.0), np.random.default_rng(0))
    rough = lambda t, where: t.roughness[where].astype(float).mean() / 255  # noqa: E731
    assert np.array_equal(matte.albedo, oily.albedo)  # the sheen is no paint
    assert rough(oily, nose) < rough(oily, cheek) - 0.1 < rough(matte, cheek) - 0.1  # the T-zone shines most
    assert abs(rough(matte, cheek) - (SKIN_ROUGHNESS - 0.2 * SHEEN_OVERALL)) < 0.02
    lips = masks["lips"] > 0.9
    assert abs(rough(oily, lips) - LIP_ROUGHNESS) < 0.03 and abs(rough(oily, chest) - CLOTH_ROUGHNESS) < 0.01

    # the renderer shows it as shading only: highlights on the nose and forehead, the same mask and landmarks
    neutral = face_model.neutral
    shiny, dull = (generator.renderer.render(neutral, FRONTAL, texture=t) for t in (oily, matte))
    assert np.array_equal(shiny.mask, dull.mask) and np.array_equal(shiny.landmarks_2d, dull.landmarks_2d)
    brighter = shiny.image.astype(int).sum(axis=-1) - dull.image.astype(int).sum(axis=-1)
    nose_tip = np.round(shiny.landmarks_2d[30]).astype(int)
    assert brighter[nose_tip[1] - 2:nose_tip[1] + 3, nose_tip[0] - 2:nose_tip[0] + 3].mean() > 5
    plain = generator.renderer.render(neutral, FRONTAL, texture=replace(oily, roughness=None))
    assert not np.array_equal(plain.image, shiny.image)  # without a map, the skin is `SKIN_ROUGHNESS` everywhere
    texturer.relief = False  # `appearance_detail=False` turns the sheen off with the relief
    try:
        assert texturer(replace(a, skin_sheen=1.0), np.random.default_rng(0)).roughness is None
    finally:
        texturer.relief = True
