import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from generation import DEFAULT_VIEWS, FaceRenderer, View, displacement_mm, pose_face, sample_identity

FRONTAL = View("frontal", 0.0, 0.0)


@pytest.fixture(scope="module")
def identity():
    return sample_identity(np.random.default_rng(3))


def landmark_disc(renderer, render, indices, radius=4):
    """Boolean mask of pixels within `radius` of the given projected landmarks."""
    yy, xx = np.mgrid[: renderer.image_size, : renderer.image_size]
    disc = np.zeros((renderer.image_size,) * 2, dtype=bool)
    for x, y in render.landmarks_2d[indices]:
        disc |= (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= radius**2
    return disc


def test_render_outputs(renderer, face_model, identity):
    vertices = pose_face(face_model, identity)
    out = renderer.render(vertices, FRONTAL, displacement=np.zeros(face_model.num_vertices, np.float32))
    size = renderer.image_size
    assert out.image.shape == (size, size, 3) and out.image.dtype == np.uint8
    assert out.mask.shape == (size, size) and 0.2 < out.mask.mean() < 0.9
    assert out.heatmap.dtype == np.float32 and not out.heatmap.any()  # neutral: all zeros
    assert out.landmarks_2d.shape == (68, 2)
    # the face is lit skin; away from the anti-aliased silhouette the background is the plain grey it was put on
    far = ~binary_dilation(out.mask, iterations=2)
    assert far.sum() > 1000 and np.abs(out.image[far].astype(int) - 128).max() <= 1
    assert out.image[out.mask].mean() > 100


def test_landmarks_inside_face_mask(renderer, face_model, identity):
    for view in DEFAULT_VIEWS:
        out = renderer.render(pose_face(face_model, identity), view)
        pixels = np.floor(out.landmarks_2d).astype(int)
        assert ((pixels >= 0) & (pixels < renderer.image_size)).all(), view
        inside = out.mask[pixels[:, 1], pixels[:, 0]]
        if view.yaw == 0:  # inner points inside; jaw-contour points lie on the silhouette, within a pixel of it
            assert inside[17:].all(), np.nonzero(~inside)
            assert binary_dilation(out.mask, iterations=1)[pixels[:17, 1], pixels[:17, 0]].all()
        else:  # far-side contour points are projected through the head and may land on the silhouette's edge
            assert inside.sum() >= 65, (view, np.nonzero(~inside))
            near_mask = binary_dilation(out.mask, iterations=3)
            assert near_mask[pixels[:, 1], pixels[:, 0]].all(), view


def test_landmarks_follow_the_face(renderer, face_model, identity):
    """Frontal landmarks are left/right mirror-consistent: the nose tip sits between the eye corners."""
    out = renderer.render(pose_face(face_model, identity), FRONTAL)
    lm = out.landmarks_2d
    assert lm[36, 0] < lm[30, 0] < lm[45, 0]  # outer eye corners either side of the nose tip
    assert lm[19, 1] < lm[30, 1] < lm[57, 1] < lm[8, 1]  # brow above nose above lower lip above chin


def test_heatmap_grows_with_intensity_in_region_and_stays_local(renderer, face_model, identity):
    neutral = pose_face(face_model, identity)
    brow_means, chin_maxes = [], []
    reference = renderer.render(neutral, FRONTAL)
    brows = landmark_disc(renderer, reference, range(17, 27))
    chin = landmark_disc(renderer, reference, [7, 8, 9])
    for intensity in (1, 2, 3, 4, 5):
        posed = pose_face(face_model, identity, {"AU4": intensity})
        heat = renderer.render(posed, FRONTAL, displacement=displacement_mm(posed, neutral)).heatmap
        brow_means.append(heat[brows].mean())
        chin_maxes.append(heat[chin].max())
    assert all(b > a for a, b in zip(brow_means, brow_means[1:])), brow_means
    assert brow_means[-1] > 2.0  # millimetres
    assert max(chin_maxes) < 0.05, chin_maxes  # AU4 moves the brows, not the chin


@pytest.mark.parametrize(
    "au, near, far",
    [
        ("AU43", range(36, 48), [7, 8, 9]),  # eyes close, chin still
        ("AU10", range(48, 60), [17, 18, 25, 26]),  # upper lip rises, outer brows still
        ("AU9", range(31, 36), [0, 16]),  # nose wrinkles, face contour at ear level still
    ],
)
def test_heatmap_locality_per_au(renderer, face_model, identity, au, near, far):
    neutral = pose_face(face_model, identity)
    posed = pose_face(face_model, identity, {au: 1 if au == "AU43" else 5})
    out = renderer.render(posed, FRONTAL, displacement=displacement_mm(posed, neutral))
    reference = renderer.render(neutral, FRONTAL)
    assert out.heatmap[landmark_disc(renderer, reference, list(near))].max() > 3.0
    assert out.heatmap[landmark_disc(renderer, reference, list(far), radius=2)].max() < 1.0


def test_heatmap_matches_vertex_values_exactly(renderer, face_model, identity):
    """Interpolating a per-vertex linear function of position reproduces it at pixels (exact id pass)."""
    vertices = pose_face(face_model, identity)
    values = (vertices[:, 1] - vertices[:, 1].min()).astype(np.float32)  # height above the lowest vertex, mm
    ids = renderer.render_ids(vertices, FRONTAL)
    field = renderer.interpolate(ids, vertices, values, FRONTAL)
    rows = np.nonzero(ids >= 0)[0]
    # a linear function is reproduced by barycentric interpolation: height decreases down the image
    col = renderer.image_size // 2
    column = field[:, col][ids[:, col] >= 0]
    assert np.all(np.diff(column) <= 1e-3)
    assert len(rows) > 0 and (ids < len(renderer.faces)).all()


def test_same_input_gives_identical_bytes(face_model, identity):
    vertices = pose_face(face_model, identity, {"AU4": 3, "AU43": 1})
    heat = displacement_mm(vertices, pose_face(face_model, identity))
    outputs = []
    for _ in range(2):
        with FaceRenderer(face_model, image_size=96) as fresh:
            out = fresh.render(vertices, DEFAULT_VIEWS[1], displacement=heat)
            outputs.append((out.image.tobytes(), out.heatmap.tobytes(), out.landmarks_2d.tobytes()))
    assert outputs[0] == outputs[1]
    other = sample_identity(np.random.default_rng(4))
    assert not np.array_equal(other, sample_identity(np.random.default_rng(3)))
    np.testing.assert_array_equal(sample_identity(np.random.default_rng(3)), sample_identity(np.random.default_rng(3)))


def test_msaa_off_matches_geometry(face_model, identity):
    vertices = pose_face(face_model, identity)
    with FaceRenderer(face_model, image_size=96, msaa=False) as plain, FaceRenderer(face_model, image_size=96, msaa=True) as smooth:
        zeros = np.zeros(len(vertices), np.float32)
        a, b = plain.render(vertices, FRONTAL, zeros), smooth.render(vertices, FRONTAL, zeros)
    np.testing.assert_array_equal(a.mask, b.mask)  # the id pass never multisamples
    diff = np.abs(a.image.astype(int) - b.image.astype(int))
    assert diff.max() > 0 and np.median(diff[a.mask]) <= 2  # only edges differ
