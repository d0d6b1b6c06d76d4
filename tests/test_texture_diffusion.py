"""The diffusion texture backend and background inpainting, with tiny random-weight pipelines saved to a folder and
loaded through `from_pretrained` (the code path real weights take), plus the UV baking they rely on."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, uniform_filter

from generation.demographics import AGE_GROUP_NAMES, Demographics
from generation.errors import ConfigError
from generation.pipeline import GenerationConfig, PainFaceGenerator, identity_spec
from generation.background.prompts import AGE_WORDS, identity_prompt
from generation.render import Lighting, View
from generation.texture import SkinTexture, create_texturer
from generation.texture.bake import TextureBaker

FRONTAL = View("frontal", 0.0, 0.0)
TINY = {"steps": 2, "resolution": 64}  # 64 px, 2 denoising steps: about a second per identity on a CPU core
FLAT = Lighting(key_intensity=0.0, fill_intensity=0.0, ambient=1.0)  # unlit: the render shows the albedo


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and threads fighting a busy CPU slow them down many times."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tiny_diffusion import save_tiny_inpaint_model, save_tiny_texture_models

    folder = tmp_path_factory.mktemp("tiny-diffusion")
    return {
        "texture": save_tiny_texture_models(folder / "sd15"),
        "inpaint": save_tiny_inpaint_model(folder / "inpaint"),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def texturer(face_model, tiny_models):
    texturer = create_texturer("diffusion", face_model, atlas_size=256, device="cpu", **tiny_models["texture"], **TINY)
    yield texturer
    texturer.close()


@pytest.fixture(scope="module")
def generator(face_model, renderer):
    """For identity specs and meshes (shares the session's 128 px renderer; never closed here)."""
    return PainFaceGenerator(GenerationConfig(num_identities=10, image_size=128), face_model, renderer=renderer)


def identity(generator, index):
    built = generator.identity(index)  # the one identity path: its neutral head, as the dataset renders it
    return built.spec, built.neutral


def make_texture(texturer, generator, index, seed=0, demographics=None):
    spec, neutral = identity(generator, index)
    return texturer(
        spec.appearance, np.random.default_rng([seed, index, 0x7E7]), neutral_vertices=neutral,
        demographics=demographics or spec.demographics,
    )


# ----------------------------------------------------------------------------------------------- prompts
def test_prompts_name_the_demographics():
    assert set(AGE_WORDS) == set(AGE_GROUP_NAMES)
    young = identity_prompt(Demographics("20-34", "male", "Hispanic/Latino", 27), suffix="")
    assert young == "A photo of a young Latino man with a neutral expression"
    old = identity_prompt(Demographics("65-79", "female", "East Asian", 70))
    assert old.startswith("A photo of an elderly East Asian woman with a neutral expression, ")


# ----------------------------------------------------------------------------------------------- baking
def test_baking_a_render_reproduces_it(face_model, renderer, generator):
    """Render the procedural face unlit, bake that image into the atlas as if a diffusion model had made it,
    render the baked texture from the same camera: the two renders agree inside the face, and the baked texels
    agree with the texture that was rendered."""
    spec, neutral = identity(generator, 3)
    source = generator.texturer(spec.appearance, np.random.default_rng(0))
    baker = TextureBaker(face_model, 256, renderer)
    original = renderer.render(neutral, FRONTAL, lighting=FLAT, texture=source, background=(0, 0, 0))
    geometry = baker.view_geometry(neutral, FRONTAL)
    color, weight = baker.project(neutral, [(geometry, original.image.astype(np.float32) / 255)])
    albedo, report = baker.compose(color, weight, source.albedo)
    again = renderer.render(
        neutral, FRONTAL, lighting=FLAT, texture=SkinTexture(albedo, source.vertex_colors), background=(0, 0, 0)
    )
    inside = binary_erosion(original.mask, iterations=2)
    difference = np.abs(again.image.astype(int) - original.image.astype(int))[inside]
    assert difference.mean() < 3.0 and np.percentile(difference, 90) <= 6, difference.mean()

    surface = baker.surface
    seen = surface.painted & (weight > 0.5)
    rows, cols = surface.rows[seen], surface.cols[seen]
    texel_difference = np.abs(albedo[rows, cols].astype(int) - source.albedo[rows, cols])
    assert seen.sum() > 5000 and texel_difference.mean() < 6.0, texel_difference.mean()
    # a frontal view bakes almost all of the front of the face (chin to forehead; the frame cuts the neck) and none
    # of the back of the head
    atlas = baker.atlas
    chin, brow = face_model.neutral[face_model.landmarks[[8, 19]], 1]
    height = atlas.position[..., 1]
    front = atlas.region_mask("face") & atlas.covered & (atlas.normal[..., 2] > 0.5)
    front = (front & (height > chin) & (height < brow + 30))[surface.rows, surface.cols]
    back = (atlas.covered & (atlas.normal[..., 2] < -0.5))[surface.rows, surface.cols]
    assert (weight[front] > 0).mean() > 0.9 and (weight[back] > 0).mean() < 0.01
    assert 0.25 < report["coverage"] < 0.6 and report["procedural"] > 0.3


def test_depth_condition_is_inverse_depth(face_model, renderer, generator):
    _, neutral = identity(generator, 0)
    geometry = TextureBaker(face_model, 256, renderer).view_geometry(neutral, FRONTAL)
    depth = geometry.depth_image()
    assert depth.shape == (128, 128, 3) and depth.dtype == np.uint8
    assert depth[~geometry.mask].max() == 0 and depth[geometry.mask].min() >= 60  # background black, face bright
    nose = renderer.render(neutral, FRONTAL).landmarks_2d[30].astype(int)
    assert depth[nose[1] - 1:nose[1] + 2, nose[0] - 1:nose[0] + 2, 0].max() >= 250  # the nose tip is nearest: white
    normal = geometry.normal_image().astype(int)
    assert normal[nose[1], nose[0], 2] > 230  # it faces the camera


# ----------------------------------------------------------------------------------------------- the backend
def test_diffusion_texture_shapes_and_coverage(texturer, generator, face_model):
    texture = make_texture(texturer, generator, 0)
    assert texture.albedo.shape == (256, 512, 3) and texture.albedo.dtype == np.uint8
    assert texture.vertex_colors.shape == (face_model.num_vertices, 3)
    report = texturer.last_report
    assert report.coverage > 0.3 and abs(report.coverage + report.mirrored + report.procedural - 1) < 1e-6
    assert "neutral expression" in report.prompt and len(report.seeds) == 1
    assert set(report.seconds) == {"procedural and depth", "diffusion", "projection and fill"}
    # the procedural base is replaced where the camera saw the face
    base = generator.texturer(identity(generator, 0)[0].appearance, np.random.default_rng(0)).albedo
    assert (np.abs(texture.albedo.astype(int) - base).sum(axis=2) > 30).mean() > 0.1


def test_diffusion_texture_is_deterministic_and_follows_seed_and_prompt(texturer, generator):
    first = make_texture(texturer, generator, 1)
    other_identity = make_texture(texturer, generator, 2)  # state left behind by another identity changes nothing
    again = make_texture(texturer, generator, 1)
    assert first.albedo.tobytes() == again.albedo.tobytes()
    assert first.albedo.tobytes() != other_identity.albedo.tobytes()
    other_seed = make_texture(texturer, generator, 1, seed=1)
    assert not np.array_equal(other_seed.albedo, first.albedo)
    demographics = identity(generator, 1)[0].demographics
    older = Demographics("80-90" if demographics.age_group != "80-90" else "20-34", demographics.gender,
                         demographics.ethnicity, demographics.age)
    other_prompt = make_texture(texturer, generator, 1, demographics=older)
    assert not np.array_equal(other_prompt.albedo, first.albedo)


def test_side_views_bake_more_of_the_head(face_model, tiny_models, generator):
    texturer = create_texturer(
        "diffusion", face_model, atlas_size=256, device="cpu", **tiny_models["texture"], **TINY,
        views=[[0, 0], [60, 0], [-60, 0]],
    )
    try:
        make_texture(texturer, generator, 0)
        assert len(texturer.last_report.seeds) == 3 and texturer.last_report.coverage > 0.5
    finally:
        texturer.close()


@pytest.mark.parametrize("kind", ["sdxl", "normal"])
def test_sdxl_and_normal_controlnet_pipelines(kind, face_model, tiny_models, generator):
    from tiny_diffusion import save_tiny_texture_models

    options = save_tiny_texture_models(tiny_models["folder"] / kind, sdxl=kind == "sdxl", normal=kind == "normal")
    texturer = create_texturer("diffusion", face_model, atlas_size=256, device="cpu", **options, **TINY)
    try:
        expected = "StableDiffusionXLControlNetPipeline" if kind == "sdxl" else "StableDiffusionControlNetPipeline"
        assert type(texturer.pipeline).__name__ == expected
        texture = make_texture(texturer, generator, 4)
        assert texture.albedo.shape == (256, 512, 3) and texturer.last_report.coverage > 0.3
    finally:
        texturer.close()


def test_backend_needs_the_mesh_and_demographics(texturer, generator):
    spec, _ = identity(generator, 0)
    with pytest.raises(TypeError, match="neutral_vertices"):
        texturer(spec.appearance, np.random.default_rng(0))


# ----------------------------------------------------------------------------------------------- missing weights
def test_missing_weights_are_one_clear_error(face_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = r"'pain3d-tests/no-such-model'.*HF_HUB_OFFLINE=1.*hf download pain3d-tests/no-such-model"
    with pytest.raises(ConfigError, match=expected):
        create_texturer("diffusion", face_model, device="cpu", base_model="pain3d-tests/no-such-model")
    with pytest.raises(ConfigError, match="folder .* does not exist"):
        create_texturer("diffusion", face_model, device="cpu", base_model=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is not a saved diffusers base model"):
        create_texturer("diffusion", face_model, device="cpu", base_model=str(tmp_path / "empty"))


def test_mismatched_controlnet_is_one_clear_error(face_model, tiny_models):
    from tiny_diffusion import save_tiny_texture_models

    sdxl = save_tiny_texture_models(tiny_models["folder"] / "mismatch", sdxl=True)
    with pytest.raises(ConfigError, match="made for another base model"):
        create_texturer(
            "diffusion", face_model, device="cpu", base_model=sdxl["base_model"],
            controlnet_model=tiny_models["texture"]["controlnet_model"], **TINY,
        )


def test_generate_refuses_missing_weights_before_writing(tmp_path, face_model_file, tiny_models, capsys):
    from pain3d.cli import main

    out = tmp_path / "out"
    code = main([
        "generate", "-o", str(out), "--num-identities", "1", "--texture", "diffusion", "--base-model",
        tiny_models["texture"]["base_model"], "--controlnet-model", "pain3d-tests/no-such-controlnet",
        "--face-model", str(face_model_file), "--device", "cpu",
    ])
    error = capsys.readouterr().err
    assert code == 2 and "depth ControlNet 'pain3d-tests/no-such-controlnet'" in error, error
    assert "hf download pain3d-tests/no-such-controlnet" in error and "Traceback" not in error and not out.exists()


def test_options_are_checked():
    with pytest.raises(ConfigError, match="unknown diffusion texture option"):
        GenerationConfig(num_identities=1, texture="diffusion", texture_options={"stepz": 3})
    with pytest.raises(ConfigError, match="only for --texture diffusion"):
        GenerationConfig(num_identities=1, texture_options={"steps": 3})
    with pytest.raises(ConfigError, match="--background must be one of"):
        GenerationConfig(num_identities=1, background="beach")
    with pytest.raises(ConfigError, match="resolution must be a multiple of 8"):
        GenerationConfig(num_identities=1, texture="diffusion", texture_options={"resolution": 100})
    config = GenerationConfig(num_identities=1, texture="diffusion", texture_options={"preset": "sdxl", "steps": 3})
    assert config.texture_options["base_model"] == "stabilityai/stable-diffusion-xl-base-1.0"
    assert config.texture_options["resolution"] == 1024 and config.texture_options["steps"] == 3
    assert GenerationConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_diffusion_flags_need_their_backend():
    from pain3d.cli import build_parser, diffusion_options

    def options(*argv):
        return diffusion_options(build_parser().parse_args(["generate", "-o", "x", "--num-identities", "1", *argv]))

    assert options() == ({}, {})
    with pytest.raises(ConfigError, match="--diffusion-steps: only used with --texture diffusion or --background"):
        options("--diffusion-steps", "4")
    with pytest.raises(ConfigError, match="--inpaint-model: only used with --background inpaint"):
        options("--texture", "diffusion", "--inpaint-model", "a/b")
    texture, background = options("--texture", "diffusion", "--texture-views", "0:0,40:5", "--diffusion-steps", "4")
    assert texture == {"steps": 4, "views": [(0.0, 0.0), (40.0, 5.0)]} and background == {}


def test_resume_accepts_a_record_from_before_the_diffusion_fields(tmp_path):
    from generation.writer import CONFIG_FILE, config_record, prepare_output, record_files

    config = GenerationConfig(num_identities=2)
    record = config_record(config)
    old = {k: v for k, v in record["config"].items() if k not in ("texture_options", "background", "background_options")}
    (tmp_path / "data").mkdir()
    (tmp_path / CONFIG_FILE).write_text(json.dumps({**record, "config": old}))
    record_files(tmp_path, [CONFIG_FILE])  # as that run's pain3d recorded it
    prepare_output(tmp_path, config, resume=True, overwrite=False, record=record)  # no "different parameters"


# ----------------------------------------------------------------------------------------------- inpainting
@pytest.fixture(scope="module")
def inpainter(tiny_models):
    from generation.background.inpaint import BackgroundInpainter

    return BackgroundInpainter({"model": tiny_models["inpaint"], **TINY}, device="cpu")


def test_inpainted_background_keeps_face_pixels_exactly(face_model, renderer, tiny_models, inpainter):
    from generation.background.inpaint import SOURCE_BACKGROUND

    config = GenerationConfig(
        num_identities=2, image_size=128, expressions_per_identity=1, views=(FRONTAL,), background="inpaint",
        background_options={"model": tiny_models["inpaint"], **TINY},
    )
    generator = PainFaceGenerator(config, face_model, renderer=renderer, device="cpu")
    spec = identity_spec(config, face_model, 1)
    built = generator.identity(spec)  # as the generator renders the rows
    plate = generator.background(built, 0)
    assert plate.shape == (128, 128, 3) and plate.dtype == np.uint8
    assert np.array_equal(plate, generator.background(generator.identity(spec), 0))  # seeded per view
    rows = generator(spec)
    from PIL import Image
    import io

    for row, aus in zip(rows, [None, *spec.expressions]):
        expression = generator.expression(built, aus)
        image = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        plain = renderer.render(
            expression.vertices, built.views[0], lighting=spec.lighting, texture=expression.skin,
            background=SOURCE_BACKGROUND, hair=built.hair,
        )
        coverage = plain.mask.astype(np.float32)
        face = uniform_filter(coverage, size=3, mode="nearest") == 1  # all but the anti-aliased silhouette ring
        assert face.sum() > 3000 and np.array_equal(image[face], plain.image[face])
        background = uniform_filter(coverage, size=3, mode="nearest") == 0
        assert np.array_equal(image[background], plate[background])
        assert not np.array_equal(image[background], plain.image[background])


def test_inpainting_rejects_bad_images_and_masks(inpainter):
    image = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    assert inpainter(image, mask, "a hospital room", seed=0).shape == (32, 32, 3)
    for bad_image, bad_mask, message in (
        (image, mask.astype(np.uint8), "boolean"),
        (image, mask[:16], "must match"),
        (np.zeros((32, 32, 4), np.uint8), mask, "RGB uint8"),
        (image.astype(np.float32), mask, "RGB uint8"),
        (image, np.ones((32, 32), bool), "no background"),
    ):
        with pytest.raises(ValueError, match=message):
            inpainter(bad_image, bad_mask, "a hospital room", seed=0)


# ----------------------------------------------------------------------------------------------- end to end
def generate_arguments(out, tiny_models, face_model_file) -> list[str]:
    texture = tiny_models["texture"]
    return [
        "generate", "-o", str(out), "--num-identities", "2", "--expressions-per-identity", "1", "--views",
        "frontal,left", "--image-size", "64", "--identities-per-shard", "1", "--texture", "diffusion",
        "--base-model", texture["base_model"], "--controlnet-model", texture["controlnet_model"], "--background",
        "inpaint", "--inpaint-model", tiny_models["inpaint"], "--diffusion-steps", "2", "--diffusion-resolution", "64",
        "--face-model", str(face_model_file), "--quiet",
    ]


@pytest.fixture(scope="module")
def diffusion_dataset(tmp_path_factory, face_model_file, tiny_models):
    from pain3d.cli import main

    out = tmp_path_factory.mktemp("diffusion-generate") / "dataset"
    assert main([*generate_arguments(out, tiny_models, face_model_file), "--device", "cpu"]) == 0
    return out


@pytest.mark.slow
def test_generate_with_diffusion_texture_and_inpainted_background(diffusion_dataset, tiny_models, tmp_path):
    from datasets import load_dataset

    out = diffusion_dataset
    dataset = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    rows = [row for split in dataset.values() for row in split]
    assert len(rows) == 2 * 2 * 2 and {row["image"].mode for row in rows} == {"RGB"}
    assert {row["image"].size for row in rows} == {(64, 64)}
    record = json.loads((out / "generation_config.json").read_text())["config"]
    texture = tiny_models["texture"]
    assert record["texture"] == "diffusion" and record["background"] == "inpaint"
    assert record["texture_options"]["base_model"] == texture["base_model"]
    assert record["background_options"]["model"] == tiny_models["inpaint"]
    card = (out / "README.md").read_text()
    assert "texture backend: `diffusion`" in card and "backgrounds: `inpaint`" in card
    assert f"diffusion models: `{texture['base_model']}`, `{texture['controlnet_model']}`" in card
    assert Path(out / "preview.png").is_file()


@pytest.mark.slow
def test_accelerate_ranks_split_identities_and_write_identical_bytes(
    diffusion_dataset, tiny_models, face_model_file, tmp_path
):
    """Two processes under `accelerate launch` share the identities; per-identity seeds make their shards the
    bytes of the one-process run (one CPU thread each, as the in-process run above uses)."""
    import hashlib
    import os
    import subprocess
    import sys

    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
        "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "pain3d",
    ]
    out = tmp_path / "ranks"
    result = subprocess.run(
        [*launcher, *generate_arguments(out, tiny_models, face_model_file)], capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: wrote" in result.stdout and "rank 1: wrote" in result.stdout

    def digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "data").glob("*.parquet"))}

    assert len(digests(out)) == 2 and digests(out) == digests(diffusion_dataset)

