"""ViTPain as a transformers model: config, model, image processor, pipeline, save / load, remote code.

Tiny configs (hidden 32, 2 layers, 32 px images, 8 px patches), random weights, no network.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, AutoModel, ViTConfig, ViTModel, pipeline

import modeling_vitpain
from modeling_vitpain import (
    BACKBONES,
    ViTPainConfig,
    ViTPainImageProcessor,
    ViTPainModel,
    ViTPainOutput,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "modeling_vitpain"
REMOTE_CODE_FILES = [
    "configuration_vitpain.py",
    "modeling_vitpain.py",
    "image_processing_vitpain.py",
    "pipeline_vitpain.py",
]
IMAGE_SIZE, PATCH_SIZE, HIDDEN = 32, 8, 32
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2


def tiny_backbone(backbone_type: str = "vit") -> dict:
    common = {
        "model_type": backbone_type,
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
    }
    extra = {"vit": {"intermediate_size": 37}, "dinov2": {"mlp_ratio": 2}}[backbone_type]
    return {**common, **extra}


def tiny_config(backbone_type: str = "vit", **kwargs) -> ViTPainConfig:
    settings = {"head_hidden_size": 16, "au_head_hidden_size": 16, **kwargs}
    return ViTPainConfig(backbone_config=tiny_backbone(backbone_type), **settings)


def tiny_model(backbone_type: str = "vit", seed: int = 0, **kwargs) -> ViTPainModel:
    torch.manual_seed(seed)
    return ViTPainModel(tiny_config(backbone_type, **kwargs)).eval()


def random_pixels(batch: int = 2, channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def random_image(height: int = 40, width: int = 50, seed: int = 2) -> PIL.Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return PIL.Image.fromarray(pixels)


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch, tmp_path_factory):
    # Remote code is copied into HF_HOME/modules: keep it in a throwaway folder.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf_home"))


# ----------------------------------------------------------------------------------------------------- config


def test_config_defaults_follow_facs_and_pspi():
    config = ViTPainConfig()
    assert config.au_names == ["AU4", "AU6", "AU7", "AU9", "AU10", "AU43"]
    assert config.au_max_intensity == [5.0, 5.0, 5.0, 5.0, 5.0, 1.0]
    assert config.pspi_max == 16.0
    assert config.pain_thresholds == [1.0, 2.0, 3.0]
    assert (config.backbone_type, config.backbone_config.hidden_size, config.backbone_config.num_hidden_layers) == (
        "vit",
        384,
        12,
    )
    assert config.num_channels == 3 and config.image_size == 224
    assert ViTPainConfig(input_modality="heatmap").backbone_config.num_channels == 1


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config("dinov2", use_lora=True, use_neutral_reference=True, pain_thresholds=[2, 4])
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, ViTPainConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert loaded.backbone_config.model_type == "dinov2" and loaded.pain_thresholds == [2.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_modality": "depth"}, "input_modality"),
        ({"pain_thresholds": [1, 20]}, "pain_thresholds"),
        ({"au_names": ["AU4", "AU4"]}, "unique"),
        ({"au_max_intensity": [5.0]}, "au_max_intensity"),
        ({"backbone_config": {"model_type": "vit", "num_channels": 3}, "input_modality": "heatmap"}, "num_channels"),
        ({"backbone_config": {"model_type": "no-such-backbone"}}, "Unknown backbone"),
        ({"backbone_config": 3}, "backbone_config"),
        ({"neutral_attention_heads": 5}, "neutral_attention_heads"),
    ],
)
def test_config_rejects_bad_settings_clearly(kwargs, message):
    settings = {"backbone_config": tiny_backbone(), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        ViTPainConfig(**settings)


def test_unregistered_backbone_type_names_the_registry():
    config = ViTPainConfig(backbone_config={"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4})
    with pytest.raises(ValueError, match="dinov2"):
        ViTPainModel(config)


# ----------------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("backbone_type", sorted(BACKBONES))
@pytest.mark.parametrize("use_neutral_reference", [False, True])
def test_output_shapes_and_ranges(backbone_type, use_neutral_reference):
    model = tiny_model(backbone_type, use_neutral_reference=use_neutral_reference)
    neutral = random_pixels(seed=5) if use_neutral_reference else None
    with torch.no_grad():
        output = model(random_pixels(), neutral_pixel_values=neutral)
    assert isinstance(output, ViTPainOutput)
    assert output.loss is None
    assert output.pspi.shape == (2,)
    assert output.action_units.shape == (2, 6)
    assert output.pain_logits.shape == (2, 3)
    assert output.pooled_output.shape == (2, HIDDEN)
    assert output.last_hidden_state.shape == (2, 1 + NUM_PATCHES, HIDDEN)
    assert output.au_attentions.shape == (2, 6, NUM_PATCHES)
    torch.testing.assert_close(output.au_attentions.sum(-1), torch.ones(2, 6))
    assert ((output.pspi >= 0) & (output.pspi <= 16)).all()
    assert ((output.action_units >= 0) & (output.action_units <= torch.tensor(model.config.au_max_intensity))).all()
    assert output.hidden_states is None and output.attentions is None


def test_difference_fusion_feeds_the_expression_change_to_the_backbone(tmp_path):
    model = tiny_model(use_neutral_reference=True, neutral_fusion="difference")
    assert model.neutral_attention is None
    assert model.backbone.embeddings.patch_embeddings.projection.in_channels == 6
    pain, neutral = random_pixels(), random_pixels(seed=5)
    with torch.no_grad():
        output = model(pain, neutral_pixel_values=neutral)
        # The backbone sees [pain, pain - neutral]: same input, same output; another neutral, another output.
        direct = model.backbone(torch.cat([pain, pain - neutral], dim=1)).last_hidden_state
        other = model(pain, neutral_pixel_values=pain).pspi
    torch.testing.assert_close(output.last_hidden_state, direct)
    assert not torch.allclose(output.pspi, other)
    assert output.last_hidden_state.shape == (2, 1 + NUM_PATCHES, HIDDEN)
    with pytest.raises(ValueError, match="neutral_pixel_values"):
        model(pain)
    model.save_pretrained(tmp_path)
    reloaded = ViTPainModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.neutral_fusion == "difference" and reloaded.config.backbone_config.num_channels == 6
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pain, neutral_pixel_values=neutral).pspi, output.pspi)
    with pytest.raises(ValueError, match="neutral_fusion"):
        tiny_config(use_neutral_reference=True, neutral_fusion="concat")


def test_heads_are_bounded_even_for_extreme_features():
    model = tiny_model()
    with torch.no_grad():
        pspi = model.pspi_head(torch.full((3, HIDDEN), 1e4) * torch.tensor([[1.0], [-1.0], [0.0]]))
        action_units, _ = model.au_head(torch.full((1, NUM_PATCHES, HIDDEN), 1e4))
    assert ((pspi >= 0) & (pspi <= 16)).all()
    assert ((action_units >= 0) & (action_units <= torch.tensor(model.config.au_max_intensity))).all()


def test_loss_is_first_and_combines_the_weighted_terms():
    assert next(iter(ViTPainOutput.__dataclass_fields__)) == "loss"
    model = tiny_model(pspi_loss_weight=0.5, au_loss_weight=2.0, pain_loss_weight=3.0)
    pspi_labels = torch.tensor([0.0, 7.0])
    action_unit_labels = torch.tensor([[0.0, 0, 0, 0, 0, 0], [3.0, 2, 1, 4, 5, 1]])
    output = model(random_pixels(), pspi_labels=pspi_labels, action_unit_labels=action_unit_labels)
    assert output.to_tuple()[0] is output.loss and output.loss.ndim == 0

    au_max = torch.tensor(model.config.au_max_intensity)
    pspi_term = torch.mean((output.pspi / 16 - pspi_labels / 16) ** 2)
    au_term = torch.mean((output.action_units / au_max - action_unit_labels / au_max) ** 2)
    targets = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # PSPI 0 and 7 against thresholds 1, 2, 3
    probabilities = torch.sigmoid(output.pain_logits)
    pain_term = -torch.mean(targets * torch.log(probabilities) + (1 - targets) * torch.log(1 - probabilities))
    torch.testing.assert_close(output.loss, 0.5 * pspi_term + 2.0 * au_term + 3.0 * pain_term)

    pspi_only = model(random_pixels(), pspi_labels=pspi_labels).loss
    torch.testing.assert_close(pspi_only, 0.5 * pspi_term + 3.0 * pain_term)
    au_only = model(random_pixels(), action_unit_labels=action_unit_labels).loss
    torch.testing.assert_close(au_only, 2.0 * au_term)
    with pytest.raises(ValueError, match="action_unit_labels"):
        model(random_pixels(), action_unit_labels=torch.zeros(2, 5))


def test_hidden_states_and_attentions_on_request():
    model = ViTPainModel._from_config(tiny_config(use_neutral_reference=True), attn_implementation="eager").eval()
    with torch.no_grad():
        output = model(
            random_pixels(),
            neutral_pixel_values=random_pixels(seed=3),
            output_hidden_states=True,
            output_attentions=True,
        )
    assert len(output.hidden_states) == 3  # embeddings + 2 layers
    assert all(state.shape == (2, 1 + NUM_PATCHES, HIDDEN) for state in output.hidden_states)
    assert len(output.attentions) == 2
    assert all(attention.shape == (2, 4, 1 + NUM_PATCHES, 1 + NUM_PATCHES) for attention in output.attentions)
    assert isinstance(model(random_pixels(), random_pixels(seed=3), return_dict=False), tuple)
    # Fused attention forms no maps: like transformers' ViT, warn and return none instead of failing.
    assert not tiny_model()(random_pixels(), output_attentions=True).attentions


def test_default_attention_is_sdpa():
    model = tiny_model()
    assert model.config._attn_implementation == "sdpa"
    assert model.backbone.config._attn_implementation == "sdpa"


def _shuffle_patches(pixels: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    batch, channels = pixels.shape[:2]
    grid = IMAGE_SIZE // PATCH_SIZE
    patches = pixels.reshape(batch, channels, grid, PATCH_SIZE, grid, PATCH_SIZE).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(batch, grid * grid, channels, PATCH_SIZE, PATCH_SIZE)[:, permutation]
    patches = patches.reshape(batch, grid, grid, channels, PATCH_SIZE, PATCH_SIZE).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(batch, channels, IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.parametrize("backbone_type", sorted(BACKBONES))
def test_positional_information_reaches_the_backbone(backbone_type):
    model = tiny_model(backbone_type)
    pixels = random_pixels()
    shuffled = _shuffle_patches(pixels, torch.randperm(NUM_PATCHES, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(pixels, shuffled)

    def predictions(images):
        with torch.no_grad():
            output = model(images)
        return torch.cat([output.pspi[:, None], output.action_units, output.pain_logits], dim=1)

    assert not torch.allclose(predictions(pixels), predictions(shuffled), atol=1e-5)
    # Control: without position embeddings a ViT is blind to patch order, so the check above can fail.
    with torch.no_grad():
        model.backbone.embeddings.position_embeddings.zero_()
    torch.testing.assert_close(predictions(pixels), predictions(shuffled), atol=1e-5, rtol=1e-4)


def _trainable(model):
    return {name: parameter for name, parameter in model.named_parameters() if parameter.requires_grad}


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"use_lora": True},
        {"use_lora": True, "use_neutral_reference": True, "backbone_type": "dinov2"},
        {"freeze_backbone": True},
    ],
    ids=["full", "lora", "lora-neutral-dinov2", "frozen-backbone"],
)
def test_every_trainable_parameter_gets_gradients_and_is_optimised(settings):
    settings = dict(settings)
    model = tiny_model(settings.pop("backbone_type", "vit"), **settings).train()
    trainable = _trainable(model)
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    if settings.get("use_lora"):
        assert {name for name in trainable if name.startswith("backbone.")} == {
            name for name, _ in model.named_parameters() if "lora_" in name
        }
        assert frozen and all(name.startswith("backbone.") for name in frozen)
    elif settings.get("freeze_backbone"):
        assert not any(name.startswith("backbone.") for name in trainable)
    else:
        assert not frozen
    for head in ("pspi_head", "pain_heads", "au_head.queries", "au_head.intensity"):
        assert any(name.startswith(head) for name in trainable), head

    before = {name: p.detach().clone() for name, p in trainable.items()}
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2, weight_decay=0.0)
    inputs = {
        "pixel_values": random_pixels(),
        "pspi_labels": torch.tensor([1.5, 9.0]),
        "action_unit_labels": torch.rand(2, 6, generator=torch.Generator().manual_seed(4)),
    }
    if model.config.use_neutral_reference:
        inputs["neutral_pixel_values"] = random_pixels(seed=6)
    for step in range(2):  # two steps: LoRA's A only gets a gradient once B has left zero
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        if step == 0:
            missing = [name for name, p in trainable.items() if p.grad is None]
            assert not missing, f"no gradient reached {missing}"
        optimizer.step()
    unchanged = [name for name, p in trainable.items() if torch.equal(p.detach(), before[name])]
    assert not unchanged, f"trainable parameters that did not learn: {unchanged}"
    for name, value in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name].detach(), value), name


def test_activation_checkpointing_gives_the_same_gradients():
    inputs = {
        "pixel_values": random_pixels(),
        "neutral_pixel_values": random_pixels(seed=3),
        "pspi_labels": torch.tensor([1.0, 2.0]),
        "action_unit_labels": torch.rand(2, 6, generator=torch.Generator().manual_seed(4)),
    }
    gradients = []
    for checkpointing in (False, True):
        model = tiny_model(use_lora=True, use_neutral_reference=True, head_dropout=0.0, lora_dropout=0.0).train()
        with torch.no_grad():  # LoRA B starts at zero, which would hide the A gradients
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.1, generator=torch.Generator().manual_seed(len(name)))
        if checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
        model(**inputs).loss.backward()
        gradients.append({name: p.grad for name, p in model.named_parameters() if p.requires_grad})
    assert all(grad is not None for grad in gradients[1].values())
    for name, grad in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], grad, msg=name)


def test_trainer_optimises_every_trainable_parameter(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = tiny_model(use_lora=True, use_neutral_reference=True)
    arguments = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    optimizer = Trainer(model=model, args=arguments).create_optimizer()
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = _trainable(model)
    assert trainable and all(id(p) in in_optimizer for p in trainable.values())
    assert all(p.requires_grad for group in optimizer.param_groups for p in group["params"])


def test_lora_dropout_shares_one_mask_per_input_tensor():
    model = tiny_model(use_lora=True, lora_dropout=0.5).train()
    dropouts = {
        id(module.lora_dropout["default"]) for module in model.backbone.modules() if hasattr(module, "lora_dropout")
    }
    assert len(dropouts) == 1
    dropout = next(m.lora_dropout["default"] for m in model.backbone.modules() if hasattr(m, "lora_dropout"))
    hidden = torch.ones(4, 1000, requires_grad=True)
    first, again, other = dropout(hidden), dropout(hidden), dropout(hidden.clone())
    assert again is first and not torch.equal(first, other)
    assert set(first.detach().unique().tolist()) <= {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert 0.4 < (first == 0).float().mean() < 0.6
    dropout.eval()
    assert dropout(hidden) is hidden


def test_wrong_inputs_get_clear_errors():
    plain = tiny_model()
    with pytest.raises(ValueError, match="channels"):
        plain(random_pixels(channels=1))
    with pytest.raises(ValueError, match="use_neutral_reference=False"):
        plain(random_pixels(), neutral_pixel_values=random_pixels())
    with pytest.raises(ValueError, match="batch, channels, height, width"):
        plain(torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE))
    with_reference = tiny_model(use_neutral_reference=True)
    with pytest.raises(ValueError, match="neutral_pixel_values"):
        with_reference(random_pixels())
    with pytest.raises(ValueError, match="one neutral image per pain image"):
        with_reference(random_pixels(batch=2), neutral_pixel_values=random_pixels(batch=3))


def test_heatmap_model_takes_one_channel():
    model = tiny_model(input_modality="heatmap")
    assert model.backbone.embeddings.patch_embeddings.projection.in_channels == 1
    with torch.no_grad():
        assert model(random_pixels(channels=1)).pspi.shape == (2,)


def test_from_backbone_starts_from_pretrained_weights(tmp_path):
    torch.manual_seed(3)
    backbone_config = ViTConfig(**{k: v for k, v in tiny_backbone().items() if k != "model_type"})
    pretrained = ViTModel(backbone_config, add_pooling_layer=False)
    pretrained.save_pretrained(tmp_path / "vit")
    weights = pretrained.state_dict()

    model = ViTPainModel.from_backbone(
        str(tmp_path / "vit"), use_lora=True, head_hidden_size=16, au_head_hidden_size=16
    )
    assert model.config.backbone_checkpoint == str(tmp_path / "vit") and model.config.use_lora
    backbone_state = {name.replace(".base_layer", ""): value for name, value in model.backbone.state_dict().items()}
    for name, value in weights.items():
        assert torch.equal(backbone_state[name], value), name

    # The difference fusion widens the patch embedding with zero weights: at first it is the pretrained model.
    fused = ViTPainModel.from_backbone(str(tmp_path / "vit"), use_neutral_reference=True, neutral_fusion="difference")
    projection = fused.backbone.embeddings.patch_embeddings.projection
    assert projection.in_channels == 6 and fused.config.backbone_config.num_channels == 6
    with torch.no_grad():
        fused_tokens = fused.eval()(random_pixels(), neutral_pixel_values=random_pixels(seed=9)).last_hidden_state
        torch.testing.assert_close(fused_tokens, pretrained.eval()(random_pixels()).last_hidden_state)

    heatmap = ViTPainModel.from_backbone(str(tmp_path / "vit"), input_modality="heatmap")
    projection = heatmap.backbone.embeddings.patch_embeddings.projection
    rgb_weight = weights["embeddings.patch_embeddings.projection.weight"]
    assert projection.in_channels == 1 and heatmap.config.backbone_config.num_channels == 1
    torch.testing.assert_close(projection.weight, rgb_weight.sum(dim=1, keepdim=True))
    with torch.no_grad():
        assert heatmap.eval()(random_pixels(channels=1)).pspi.shape == (2,)


# ------------------------------------------------------------------------------------------- save / load / remote


def test_save_pretrained_writes_safetensors_auto_map_and_code(tmp_path):
    model = tiny_model("dinov2", use_lora=True, use_neutral_reference=True)
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files and not files & {"pytorch_model.bin", "model.bin"}
    assert {"configuration_vitpain.py", "modeling_vitpain.py"} <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vitpain.ViTPainConfig",
        "AutoModel": "modeling_vitpain.ViTPainModel",
    }
    assert config["model_type"] == "vitpain" and config["backbone_config"]["model_type"] == "dinov2"
    assert any("lora_A" in key for key in load_file(str(tmp_path / "model.safetensors")))

    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is ViTPainModel
    inputs = {"pixel_values": random_pixels(), "neutral_pixel_values": random_pixels(seed=8)}
    with torch.no_grad():
        expected, actual = model(**inputs), loaded(**inputs)
    for key in ("pspi", "action_units", "pain_logits", "pooled_output", "au_attentions"):
        assert torch.equal(expected[key], actual[key]), key


def test_remote_code_files_import_only_each_other_and_libraries():
    """The folder copied next to the weights must work alone: no `generation` / `dataset_builder`, relative siblings."""
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 0:  # absolute: a library, never the data side nor this package by name
                    assert module.split(".")[0] not in {"generation", "dataset_builder", "modeling_vitpain"}, (
                        path,
                        module,
                    )
                elif path.name in REMOTE_CODE_FILES:
                    assert f"{module}.py" in REMOTE_CODE_FILES, (path.name, module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in {"generation", "dataset_builder"}, (path, alias.name)


@pytest.fixture(scope="module")
def saved_pipeline_folder(tmp_path_factory):
    """A model + processor + pipeline folder, and the outputs the saving process computed on fixed inputs."""
    folder = tmp_path_factory.mktemp("vitpain_saved") / "vitpain-tiny"
    model = tiny_model(use_lora=True, use_neutral_reference=True, seed=11)
    processor = ViTPainImageProcessor.from_model_config(model.config)
    pipe = pipeline("pain-estimation", model=model, image_processor=processor)
    pipe.save_pretrained(folder)
    inputs = {"pixel_values": random_pixels(seed=12), "neutral_pixel_values": random_pixels(seed=13)}
    torch.save(inputs, folder.parent / "inputs.pt")
    with torch.no_grad():
        output = model(**inputs)
    expected = {key: output[key] for key in ("pspi", "action_units", "pain_logits", "pooled_output", "au_attentions")}
    image, neutral = random_image(seed=14), random_image(seed=15)
    image.save(folder.parent / "image.png")
    neutral.save(folder.parent / "neutral.png")
    expected_pipeline = pipe(image, neutral_images=neutral)
    return folder, expected, expected_pipeline


_FRESH_PROCESS_SCRIPT = """
import json, sys
from pathlib import Path
if sys.argv[2] == "without":
    sys.modules["modeling_vitpain"] = None  # the package must not be importable: only the folder's copy may run
else:
    import modeling_vitpain
import PIL.Image
import torch
from transformers import AutoModel, pipeline

folder = Path(sys.argv[1])
model = AutoModel.from_pretrained(folder, trust_remote_code=sys.argv[2] == "without").eval()
inputs = torch.load(folder.parent / "inputs.pt")
with torch.no_grad():
    output = model(**inputs)
keys = ("pspi", "action_units", "pain_logits", "pooled_output", "au_attentions")
torch.save({key: output[key] for key in keys}, Path(sys.argv[3]) / "outputs.pt")
# Without the package the folder's `custom_pipelines` names the task; with it, the registered task is named.
pipe = pipeline(None if sys.argv[2] == "without" else "pain-estimation", model=str(folder), trust_remote_code=True)
images = [PIL.Image.open(folder.parent / name) for name in ("image.png", "neutral.png")]
result = pipe(images[0], neutral_images=images[1])
print(json.dumps({"module": type(model).__module__, "pipeline": type(pipe).__name__,
                  "pipeline_module": type(pipe).__module__, "result": result}))
"""


@pytest.mark.parametrize("package", ["without", "with"])
def test_fresh_process_loads_saved_folder_with_identical_outputs(saved_pipeline_folder, package, tmp_path):
    folder, expected, expected_pipeline = saved_pipeline_folder
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TRANSFORMERS_VERBOSITY="error")
    if package == "with":
        env["PYTHONPATH"] = str(REPO_ROOT)
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(_FRESH_PROCESS_SCRIPT))
    completed = subprocess.run(
        [sys.executable, str(script), str(folder), package, str(tmp_path)],
        cwd=tmp_path,  # not the repository: nothing importable by accident
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if package == "without":
        assert report["module"].startswith("transformers_modules."), report["module"]
        assert report["pipeline_module"].startswith("transformers_modules."), report["pipeline_module"]
    else:  # the package's code, even with trust_remote_code=True: the folder's copy never runs
        assert report["module"] == "modeling_vitpain.modeling_vitpain"
        assert report["pipeline_module"] == "modeling_vitpain.pipeline_vitpain"
    assert report["pipeline"] == "PainEstimationPipeline"
    actual = torch.load(tmp_path / "outputs.pt")
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key
    assert report["result"]["action_units"].keys() == expected_pipeline["action_units"].keys()
    assert report["result"]["pspi"] == pytest.approx(expected_pipeline["pspi"], abs=1e-5)


def test_import_registers_auto_classes_and_pipeline():
    from transformers.pipelines import PIPELINE_REGISTRY

    assert AutoConfig.for_model("vitpain").__class__ is ViTPainConfig
    assert "pain-estimation" in PIPELINE_REGISTRY.get_supported_tasks()
    assert modeling_vitpain.PIPELINE_TASK == "pain-estimation"
    assert isinstance(AutoModel.from_config(tiny_config()), ViTPainModel)


# ------------------------------------------------------------------------------------------- image processor


@pytest.fixture()
def processor():
    return ViTPainImageProcessor.from_model_config(tiny_config())


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "1", "CMYK", "I;16"])
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (37, 23), (64, 64)])
def test_processor_converts_modes_and_sizes(processor, mode, size):
    image = random_image(*size).convert(mode) if mode != "I;16" else None
    if mode == "I;16":  # 16-bit single channel is a measurement, not a face photo
        with pytest.raises(ValueError, match="heatmap"):
            processor(PIL.Image.new("I;16", size[::-1]))
        return
    pixel_values = processor(image)["pixel_values"]
    assert pixel_values.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE) and pixel_values.dtype == torch.float32
    assert torch.isfinite(pixel_values).all() and pixel_values.abs().max() <= 1.0 + 1e-6
    if mode in ("L", "LA", "1"):
        assert torch.equal(pixel_values[0, 0], pixel_values[0, 1]) and torch.equal(
            pixel_values[0, 0], pixel_values[0, 2]
        )


def test_processor_handles_alpha_arrays_and_tensors_consistently(processor):
    transparent = PIL.Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert torch.allclose(processor(transparent)["pixel_values"], torch.ones(1, 3, IMAGE_SIZE, IMAGE_SIZE))  # white
    image = random_image(32, 32)
    reference = processor(image)["pixel_values"]
    array = np.asarray(image)
    torch.testing.assert_close(processor(array)["pixel_values"], reference)
    torch.testing.assert_close(processor(np.moveaxis(array, -1, 0))["pixel_values"], reference)
    torch.testing.assert_close(processor(torch.from_numpy(array / 255.0).permute(2, 0, 1))["pixel_values"], reference)
    batch = processor([image, image.convert("L"), array])["pixel_values"]
    assert batch.shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert processor(np.stack([array, array]))["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert isinstance(processor(image, return_tensors="np")["pixel_values"], np.ndarray)


def test_heatmap_processor_uses_a_fixed_scale():
    processor = ViTPainImageProcessor.from_model_config(tiny_config(input_modality="heatmap"), heatmap_scale_mm=10.0)
    heatmap = np.zeros((48, 48), dtype=np.float32)
    heatmap[10:30, 5:40] = 5.0
    from_array = processor(heatmap)["pixel_values"]
    from_pil = processor(PIL.Image.fromarray(heatmap, mode="F"))["pixel_values"]
    from_tensor = processor(torch.from_numpy(heatmap)[None])["pixel_values"]
    assert from_array.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(from_array, from_pil)
    torch.testing.assert_close(from_array, from_tensor)
    assert from_array.max().item() == pytest.approx(0.5)  # 5 mm / 10 mm
    # No per-sample normalisation: twice the displacement gives twice the input; all-zero stays zero.
    torch.testing.assert_close(processor(heatmap * 2)["pixel_values"], from_array * 2)
    assert processor(np.zeros((7, 9), dtype=np.float32))["pixel_values"].abs().max() == 0
    with pytest.raises(ValueError, match="float millimetres"):
        processor(random_image())
    with pytest.raises(TypeError, match="float arrays"):
        processor(np.zeros((8, 8), dtype=np.uint16))
    with pytest.raises(ValueError, match="NaN"):
        processor(np.full((8, 8), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="one channel"):
        processor(np.zeros((3, 8, 8), dtype=np.float32))


@pytest.mark.parametrize(
    ("bad_input", "error", "message"),
    [
        (42, TypeError, "expected a PIL.Image.Image"),
        (None, TypeError, "expected a PIL.Image.Image"),
        ({"image": 1}, TypeError, "got dict"),
        ([], ValueError, "empty"),
        ("/no/such/face.png", FileNotFoundError, "no image file"),
        (np.zeros((8, 8), dtype=np.int64), TypeError, "uint8"),
        (np.full((8, 8, 3), 2.0), ValueError, r"\[0, 1\]"),
        (np.zeros((8, 8, 7), dtype=np.uint8), ValueError, "not an image"),
        (np.zeros((0, 8, 3), dtype=np.uint8), ValueError, "empty"),
        (PIL.Image.new("F", (8, 8)), ValueError, "heatmap"),
    ],
)
def test_processor_rejects_wrong_inputs_clearly(processor, bad_input, error, message):
    with pytest.raises(error, match=message):
        processor(bad_input)


def test_processor_requires_one_neutral_image_per_image(processor):
    image = random_image()
    output = processor([image, image], neutral_images=[image, image])
    assert output["neutral_pixel_values"].shape == output["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with pytest.raises(ValueError, match="2 image.*3 neutral"):
        processor([image, image], neutral_images=[image, image, image])
    with pytest.raises(TypeError, match="unexpected keyword"):
        processor(image, no_such_option=False)


def test_processor_round_trips_and_registers(tmp_path):
    processor = ViTPainImageProcessor.from_model_config(tiny_config("dinov2", input_modality="heatmap"))
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["auto_map"] == {"AutoImageProcessor": "image_processing_vitpain.ViTPainImageProcessor"}
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ViTPainImageProcessor)
    assert (loaded.input_modality, loaded.size, loaded.heatmap_scale_mm) == (
        "heatmap",
        {"height": 32, "width": 32},
        10.0,
    )


# ----------------------------------------------------------------------------------------------------- pipeline


def _check_result(result, config):
    assert set(result) == {"pspi", "action_units", "pain_probability"}
    assert isinstance(result["pspi"], float) and 0 <= result["pspi"] <= 16
    assert list(result["action_units"]) == config.au_names
    assert all(isinstance(value, float) for value in result["action_units"].values())
    assert list(result["pain_probability"]) == [">=1", ">=2", ">=3"]
    assert all(0 <= p <= 1 for p in result["pain_probability"].values())


def test_pipeline_single_and_batched():
    model = tiny_model()
    pipe = pipeline(
        "pain-estimation", model=model, image_processor=ViTPainImageProcessor.from_model_config(model.config)
    )
    images = [random_image(seed=20), random_image(17, 9, seed=21).convert("L"), random_image(seed=22).convert("RGBA")]
    single = pipe(images[0])
    _check_result(single, model.config)
    with torch.no_grad():
        direct = model(**pipe.image_processor(images[0]))
    assert single["pspi"] == pytest.approx(direct.pspi.item(), abs=1e-6)
    batched = pipe(images, batch_size=2)
    assert isinstance(batched, list) and len(batched) == 3
    for result, image in zip(batched, images, strict=True):
        _check_result(result, model.config)
        one = pipe(image)
        assert result["pspi"] == pytest.approx(one["pspi"], abs=1e-5)
        assert result["pain_probability"] == pytest.approx(one["pain_probability"], abs=1e-5)


def test_pipeline_with_neutral_reference():
    model = tiny_model(use_neutral_reference=True)
    pipe = pipeline(
        "pain-estimation", model=model, image_processor=ViTPainImageProcessor.from_model_config(model.config)
    )
    image, neutral = random_image(seed=30), random_image(seed=31)
    _check_result(pipe(image, neutral_images=neutral), model.config)
    results = pipe([image, neutral], neutral_images=[neutral, image], batch_size=2)
    assert len(results) == 2 and results[0]["pspi"] != results[1]["pspi"]
    as_dict, as_keyword = pipe({"image": image, "neutral_image": neutral}), pipe(image, neutral_images=neutral)
    assert as_dict["pspi"] == pytest.approx(as_keyword["pspi"])
    assert as_dict["action_units"] == pytest.approx(as_keyword["action_units"])
    with pytest.raises(ValueError, match="2 image.*1 neutral"):
        pipe([image, image], neutral_images=[neutral])
    with pytest.raises(ValueError, match="both be lists"):
        pipe([image], neutral_images=neutral)
    with pytest.raises(ValueError, match="neutral_images="):  # the pipeline's own argument, not the model's
        pipe(image)


def test_pipeline_heatmap_model_and_modality_mismatch():
    model = tiny_model(input_modality="heatmap")
    pipe = pipeline(
        "pain-estimation", model=model, image_processor=ViTPainImageProcessor.from_model_config(model.config)
    )
    heatmap = np.random.default_rng(0).random((40, 40), dtype=np.float32) * 4
    _check_result(pipe(PIL.Image.fromarray(heatmap, mode="F")), model.config)
    with pytest.raises(ValueError, match="'rgb' inputs but the model expects 'heatmap'"):
        pipeline("pain-estimation", model=model, image_processor=ViTPainImageProcessor(size=32))


def test_pipeline_loads_from_a_model_folder(tmp_path):
    """A training-script folder (model + processor, no pipeline entry) needs no remote code once the package is in."""
    model = tiny_model()
    model.save_pretrained(tmp_path)
    ViTPainImageProcessor.from_model_config(model.config).save_pretrained(tmp_path)
    pipe = pipeline("pain-estimation", model=str(tmp_path))
    image = random_image(seed=40)
    with torch.no_grad():
        direct = model(**ViTPainImageProcessor.from_model_config(model.config)(image))
    assert pipe(image)["pspi"] == pytest.approx(direct.pspi.item(), abs=1e-5)


def test_pipeline_loads_from_a_saved_folder(saved_pipeline_folder):
    folder, _, expected = saved_pipeline_folder
    # The folder records the task under `custom_pipelines` (for machines without the package); the package's
    # registered task wins, so no trust_remote_code is needed here.
    pipe = pipeline("pain-estimation", model=str(folder))
    assert type(pipe) is modeling_vitpain.PainEstimationPipeline
    result = pipe(str(folder.parent / "image.png"), neutral_images=str(folder.parent / "neutral.png"))
    assert result["pspi"] == pytest.approx(expected["pspi"], abs=1e-5)


@pytest.mark.parametrize("trust_remote_code", [None, False, True])
def test_with_the_package_no_folder_code_runs(model_folder, tmp_path, trust_remote_code):
    """Issue 33 high 10: with the package imported, a folder loads through the registered classes only; its own
    copies of the code (which an edited folder could change) never run, whatever trust_remote_code says."""
    folder = edited_copy(model_folder, tmp_path / "edited")
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"]  # kept for machines without us
    for name in REMOTE_CODE_FILES:
        (folder / name).write_text("raise RuntimeError('the folder\\'s own code ran')\n")
    pain = pipeline("pain-estimation", model=str(folder), trust_remote_code=trust_remote_code)
    assert type(pain) is modeling_vitpain.PainEstimationPipeline
    assert type(pain.model) is ViTPainModel and type(pain.image_processor) is ViTPainImageProcessor
    assert np.isfinite(pain(random_image())["pspi"])
    assert type(AutoModel.from_pretrained(folder, trust_remote_code=trust_remote_code)) is ViTPainModel


def test_processor_takes_bfloat16_and_half_tensors(processor):
    image = torch.rand(3, 20, 20)
    reference = processor(image)["pixel_values"]
    for dtype in (torch.bfloat16, torch.float16):
        torch.testing.assert_close(processor(image.to(dtype))["pixel_values"], processor(image.to(dtype).float())[
            "pixel_values"])
    assert processor(image.to(torch.bfloat16))["pixel_values"].dtype == reference.dtype == torch.float32


def test_pipeline_on_an_empty_list_returns_an_empty_list():
    model = tiny_model()
    pipe = pipeline(
        "pain-estimation", model=model, image_processor=ViTPainImageProcessor.from_model_config(model.config)
    )
    assert pipe([]) == []


# ------------------------------------------------------------------------------- what does not fit is refused on load


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A folder as the training scripts write it (`save_model_folder`: weights, config, processor, code)."""
    folder = tmp_path_factory.mktemp("vitpain_folder") / "model"
    model = tiny_model(seed=21)
    modeling_vitpain.save_model_folder(model, ViTPainImageProcessor.from_model_config(model.config), folder)
    return folder


def edited_copy(folder: Path, target: Path, *, config=None, processor=None, weights=None) -> Path:
    """A copy of `folder` with config.json / preprocessor_config.json edited in place (`config(dict)`, ...) or the
    weights replaced (`weights(state_dict) -> state_dict`), as a user or a bad download would leave it."""
    import shutil

    from safetensors.torch import save_file

    shutil.copytree(folder, target)
    for name, edit in (("config.json", config), ("preprocessor_config.json", processor)):
        if edit is not None:
            values = json.loads((target / name).read_text())
            edit(values)
            (target / name).write_text(json.dumps(values))  # NaN is written as NaN, which json (and transformers) read
    if weights is not None:
        save_file(weights(load_file(str(target / "model.safetensors"))), str(target / "model.safetensors"),
                  metadata={"format": "pt"})
    return target


def _drop(prefixes):
    return lambda state: {key: value for key, value in state.items() if not key.startswith(prefixes)}


@pytest.mark.parametrize(
    ("weights", "named"),
    [
        pytest.param(_drop(("pspi_head.", "pain_heads.", "au_head.")), "misses au_head.intensity.bias", id="no heads"),
        pytest.param(lambda state: {"classifier.weight": torch.zeros(2, 32)}, "holds unknown classifier.weight",
                     id="unrelated keys"),
        pytest.param(lambda state: {**state, "pspi_head.scale": torch.ones(1)}, "holds unknown pspi_head.scale",
                     id="one key too many"),
        pytest.param(_drop(("backbone.encoder.layer.1.", "backbone.layers.1.")), "misses backbone.", id="a layer short"),
    ],
)
def test_weights_that_do_not_fit_are_refused_in_one_line(model_folder, tmp_path, weights, named):
    """Issue 33 high 6: transformers only prints a load report and starts the missing heads at random."""
    folder = edited_copy(model_folder, tmp_path / "model", weights=weights)
    with pytest.raises(modeling_vitpain.CheckpointMismatchError, match=named) as error:
        AutoModel.from_pretrained(folder)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
    # the pipeline too, with the same line (not a ValueError that pipeline() would bury in every class's traceback)
    with pytest.raises(modeling_vitpain.CheckpointMismatchError, match=named):
        pipeline("pain-estimation", model=str(folder))


def test_weights_that_fit_load_as_saved(model_folder, tmp_path):
    model, info = ViTPainModel.from_pretrained(model_folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert isinstance(ViTPainModel.from_pretrained(model_folder), ViTPainModel)
    # A caller asking for the load report gets it, as transformers returns it, and judges it itself.
    folder = edited_copy(model_folder, tmp_path / "headless", weights=_drop(("pspi_head.",)))
    _, info = ViTPainModel.from_pretrained(folder, output_loading_info=True)
    assert info["missing_keys"] and all(key.startswith("pspi_head.") for key in info["missing_keys"])


NAN = float("nan")


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c["backbone_config"].update(num_hidden_layers=-1), "backbone_config.num_hidden_layers"),
        (lambda c: c["backbone_config"].update(num_attention_heads=0), "backbone_config.num_attention_heads"),
        (lambda c: c["backbone_config"].update(patch_size=64), "backbone_config.patch_size"),
        (lambda c: c["backbone_config"].update(layer_norm_eps=NAN), "backbone_config.layer_norm_eps"),
        (lambda c: c.update(au_max_intensity=[NAN] * 6), "au_max_intensity"),
        (lambda c: c.update(pspi_max=NAN), "pspi_max"),
        (lambda c: c.update(pain_thresholds=[1.0, NAN]), "pain_thresholds"),
        (lambda c: c.update(head_hidden_size=0), "head_hidden_size"),
        (lambda c: c.update(head_dropout=1.5), "head_dropout"),
        (lambda c: c.update(use_neutral_reference="false"), "use_neutral_reference"),
        (lambda c: c.update(use_lora="no"), "use_lora"),
        (lambda c: c.update(lora_rank=0), "lora_rank"),
        (lambda c: c.update(pspi_loss_weight=-1), "pspi_loss_weight"),
    ],
)
def test_saved_config_outside_its_ranges_is_refused_on_load(model_folder, tmp_path, edit, field):
    """Issue 33 high 6 and 7, low: a config that would build a model without layers, predict NaN, or read the string
    "false" as True names its field in one line."""
    folder = edited_copy(model_folder, tmp_path / "model", config=edit)
    for load in (AutoConfig.from_pretrained, AutoModel.from_pretrained,
                 lambda path: pipeline("pain-estimation", model=str(path))):
        with pytest.raises(ValueError, match=f"^{field.replace('.', '[.]')} must") as error:
            load(folder)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"image_std": [0.0, 0.0, 0.0]}, "image_std"),
        ({"image_std": [0.5, -0.5, 0.5]}, "image_std"),
        ({"image_mean": [NAN, 0.5, 0.5]}, "image_mean"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
        ({"heatmap_scale_mm": float("inf")}, "heatmap_scale_mm"),
        ({"heatmap_scale_mm": NAN}, "heatmap_scale_mm"),
        ({"do_normalize": "false"}, "do_normalize"),
        ({"size": {"height": 0, "width": 32}}, "size"),
    ],
)
def test_saved_processor_values_are_checked_on_load(model_folder, tmp_path, edit, field):
    """Issue 33 high 7: `image_std: 0` or `image_mean: NaN` gave NaN predictions with no error."""
    folder = edited_copy(model_folder, tmp_path / "model", processor=lambda values: values.update(edit))
    for load in (AutoImageProcessor.from_pretrained, lambda path: pipeline("pain-estimation", model=str(path))):
        with pytest.raises(ValueError, match=f"^{field} must") as error:
            load(folder)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=f"^{field} must"):  # per-call overrides are checked alike
        ViTPainImageProcessor()(random_image(), **edit)


def test_valid_saved_values_still_predict_finite_numbers(model_folder):
    result = pipeline("pain-estimation", model=str(model_folder))(random_image())
    assert np.isfinite(result["pspi"]) and all(np.isfinite(v) for v in result["action_units"].values())


@pytest.mark.parametrize("value", [1, "true", None])
def test_switches_take_only_booleans(value):
    with pytest.raises(ValueError, match="use_neutral_reference must be true or false"):
        tiny_config(use_neutral_reference=value)
