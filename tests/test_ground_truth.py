"""Ground truth (docs/ground_truth.md) checked on real renders written by `pain3d generate --passes ...` in a fresh
process and read back with `datasets.load_dataset`: camera, 3D landmarks and their visibility, depth, normals and
segmentation agree with each other and with the images; shards stay byte-identical across workers and resumes."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from datasets import Image, List, Value, load_dataset

from generation.columns import GEOMETRY_COLUMNS, PASSES, SEGMENTATION_CLASSES
from generation.config import GenerationConfig
from generation.errors import ConfigError
from generation.ground_truth import decode_depth, decode_normals

CLASS = {name: i for i, name in enumerate(SEGMENTATION_CLASSES)}
SIZE = 256  # fine enough that a landmark's pixel neighbourhood holds its own surface to within 1 mm
SEED, IDENTITIES = 3, 2


def generate(output, *extra, size=SIZE, identities=IDENTITIES):
    command = [sys.executable, "-m", "pain3d", "generate", "-o", str(output), "--num-identities", str(identities),
               "--expressions-per-identity", "1", "--image-size", str(size), "--seed", str(SEED), "--quiet",
               "--identities-per-shard", "1", "--passes", ",".join(PASSES), *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def rows(tmp_path_factory, face_model_file):
    folder = generate(tmp_path_factory.mktemp("gt") / "data")
    dataset = load_dataset(str(folder), cache_dir=str(tmp_path_factory.mktemp("hf")))
    features = next(iter(dataset.values())).features
    out = [row for split in dataset for row in dataset[split]]
    return features, {row["sample_id"]: row for row in out}, folder


def test_every_new_column_is_typed(rows):
    features, table, _ = rows
    for name in PASSES:
        assert isinstance(features[name], Image)
    assert isinstance(features["camera_intrinsics"], List) and isinstance(features["landmarks_visible"], List)
    assert features["landmarks_visible"].feature == Value("bool") and features["landmarks_visible"].length == 68
    assert features["head_pose"]["rotation"].length == 3 and set(features["head_pose"]) >= {"yaw", "pitch", "roll"}
    row = next(iter(table.values()))
    assert all(name in row for name in GEOMETRY_COLUMNS)
    assert np.asarray(row["depth"]).dtype in (np.uint16, np.int32) and np.asarray(row["normals"]).shape == (SIZE, SIZE, 3)
    assert np.asarray(row["segmentation"]).dtype == np.uint8


def test_landmarks_project_and_back_project(rows):
    _, table, _ = rows
    checked = 0
    for row in table.values():
        K = np.asarray(row["camera_intrinsics"], np.float64)
        E = np.asarray(row["camera_extrinsics"], np.float64)
        p3 = np.asarray(row["landmarks_3d"], np.float64)
        p2 = np.asarray(row["landmarks_2d"], np.float64)
        assert np.allclose(E[:3, :3], row["head_pose"]["rotation"], atol=1e-6)
        assert np.allclose(E[:3, :3] @ E[:3, :3].T, np.eye(3), atol=1e-5) and np.allclose(E[3], [0, 0, 0, 1])
        projected = p3 @ K.T
        assert np.abs(projected[:, :2] / projected[:, 2:] - p2).max() < 0.5
        # back-projection: the depth at the landmark's pixel neighbourhood puts it back where landmarks_3d says, for
        # every visible landmark on a surface that is smooth around it (where the neighbourhood's depths span under
        # 2 mm: at an outline, such as the jaw's in a frontal view or a lid's edge, the depth jumps between pixels)
        depth = decode_depth(row["depth"])
        visible = np.asarray(row["landmarks_visible"])
        for k in np.nonzero(visible)[0]:
            if 36 <= k <= 47 or k >= 60:  # lid margins and inner lips sit in creases, behind the lashes or lips
                continue
            col, r = int(p2[k, 0]), int(p2[k, 1])
            z = depth[max(r - 1, 0):r + 2, max(col - 1, 0):col + 2]
            if not z.all() or np.ptp(z) > 2.0:
                continue
            # the depth at the landmark itself: bilinear between the four pixel centres around it
            x, y = p2[k] - 0.5
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            z_at = ((1 - fx) * (1 - fy) * depth[y0, x0] + fx * (1 - fy) * depth[y0, x0 + 1]
                    + (1 - fx) * fy * depth[y0 + 1, x0] + fx * fy * depth[y0 + 1, x0 + 1])
            back = np.r_[(p2[k] - K[:2, 2]) * z_at / K[0, 0], z_at]
            assert np.linalg.norm(back - p3[k]) < 1.0, (row["sample_id"], k, np.linalg.norm(back - p3[k]))
            checked += 1
    assert checked >= 12 * len(table)  # about a fifth of all landmarks lie on smooth, visible skin off the lids


def test_visibility_far_jaw_hidden_in_side_views_eye_corners_seen_frontal(rows):
    _, table, _ = rows
    for identity in range(IDENTITIES):
        prefix = f"id_{identity:05d}_e00_"
        assert all(table[prefix + "frontal"]["landmarks_visible"][k] for k in (36, 39, 42, 45))
        # the camera of the left view is on the person's left: the jaw of their right side (0-7) is behind the face
        assert not any(table[prefix + "left"]["landmarks_visible"][k] for k in range(0, 5))
        assert not any(table[prefix + "right"]["landmarks_visible"][k] for k in range(12, 17))
        assert all(table[prefix + "left"]["landmarks_visible"][k] for k in (12, 13, 14))


def test_passes_agree_on_the_background_and_normals_face_the_camera(rows):
    _, table, _ = rows
    for row in table.values():
        depth = decode_depth(row["depth"])
        segmentation = np.asarray(row["segmentation"])
        normals_png = np.asarray(row["normals"])
        background = depth == 0
        assert background.any() and (~background).any()
        assert np.array_equal(segmentation == CLASS["background"], background)
        assert np.array_equal(~normals_png.any(axis=-1), background)
        normals = decode_normals(row["normals"])[~background]
        assert np.abs(np.linalg.norm(normals, axis=1) - 1).max() < 0.02
        # facing the camera: the normal points back along the ray through the pixel (OpenCV camera: z forward)
        K = np.asarray(row["camera_intrinsics"])
        rows_, cols = np.nonzero(~background)
        rays = np.c_[(cols + 0.5 - K[0, 2]) / K[0, 0], (rows_ + 0.5 - K[1, 2]) / K[1, 1], np.ones(len(cols))]
        assert (np.einsum("ij,ij->i", normals, -rays) > -0.02).all()
        present = set(np.unique(segmentation))
        assert {CLASS["skin"], CLASS["nose"]} <= present and max(present) < len(SEGMENTATION_CLASSES)


def test_hair_classes_are_where_the_hair_mesh_is_seen(rows, face_model):
    from generation.pipeline import PainFaceGenerator

    _, table, _ = rows
    config = GenerationConfig(num_identities=IDENTITIES, expressions_per_identity=1, image_size=SIZE, seed=SEED)
    with PainFaceGenerator(config, face_model) as generator:
        seen_hair = 0
        for identity_index in range(IDENTITIES):
            identity = generator.identity(identity_index)
            neutral = generator.expression(identity)
            for view_number, view in enumerate(identity.views):
                ids = generator.renderer.render_ids(neutral.vertices, view, identity.hair)
                hair = ids >= len(generator.renderer.faces)  # the hair mesh's own triangles in the id pass
                segmentation = np.asarray(table[f"{identity.spec.identity_id}_e00_{view.name}"]["segmentation"])
                worn = np.isin(segmentation, [CLASS["hair"], CLASS["headwear"], CLASS["earrings"]])
                assert np.array_equal(worn, hair)
                seen_hair += hair.sum()
        assert seen_hair > 0


def test_blendshape_weights_are_the_rigs(rows):
    from generation.facs import blendshape_weights

    _, table, _ = rows
    for row in table.values():
        aus = {name: value for name, value in row["action_units"].items() if value}
        expected = blendshape_weights(aus)
        stored = {name: value for name, value in row["blendshape_weights"].items() if value}
        assert set(stored) == set(expected)
        assert all(abs(stored[name] - expected[name]) < 1e-5 for name in expected)
        assert bool(stored) == (row["expression_index"] > 0)


def test_bad_passes_are_one_clear_error_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="valid passes are depth, normals, segmentation"):
        GenerationConfig(num_identities=1, passes="depth,albedo")
    out = tmp_path / "never"
    result = subprocess.run([sys.executable, "-m", "pain3d", "generate", "-o", str(out), "--num-identities", "1",
                             "--passes", "depth,albedo"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "valid passes are depth, normals, segmentation" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "albedo" in line]) == 1
    assert not out.exists()


def test_shards_with_passes_byte_identical_across_workers_and_resume(tmp_path, face_model_file):
    def digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "data").glob("*.parquet"))}

    one = generate(tmp_path / "one", size=48, identities=3)
    two = generate(tmp_path / "two", "--workers", "2", size=48, identities=3)
    assert digests(one) == digests(two) and len(digests(one)) == 3
    shard = sorted((one / "data").glob("*.parquet"))[0]
    shard.unlink()
    generate(one, "--resume", size=48, identities=3)
    assert digests(one) == digests(two)


def test_export_official_ignores_the_passes(rows, tmp_path):
    from dataset_builder.export import export_official

    report = export_official(rows[2], tmp_path / "official")
    assert report.pain_images == IDENTITIES * 3 and report.neutral_images == IDENTITIES * 3
    names = [path.name for path in (tmp_path / "official").rglob("*")]
    assert not [name for name in names if any(word in name for word in ("depth", "normals", "segmentation"))]
