"""transformers' own model conventions, checked two ways:

1. Targeted tests for each convention ViTPain once missed (always run): output flags from the config, input
   embeddings, attention implementation switching, LoRA on a checkpoint saved without LoRA, per-call processor
   arguments, declared modalities and split modules.
2. transformers' own `ModelTesterMixin` (the common model tests of the installed version, set up the way transformers
   tests its ViT) run against ViTPain. The tests ship in transformers' source distribution, not in its wheel:
   `pip download --no-deps --no-binary :all: transformers==<installed>` and unpack it, then point
   `TRANSFORMERS_TESTS_DIR` at its `tests/` folder (`.ci/run` does this; they need `parameterized`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

import pytest
import torch

from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel

BACKBONE = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 37, "image_size": 30, "patch_size": 2}


def tiny_config(**kwargs) -> ViTPainConfig:
    kwargs.setdefault("backbone_config", dict(BACKBONE))
    return ViTPainConfig(head_hidden_size=16, au_head_hidden_size=16, **kwargs)


def _pixels(batch=2):
    return torch.rand(batch, 3, 30, 30)


# ---- targeted tests ----------------------------------------------------------------------------------------------


def test_output_flags_fall_back_to_the_config(tmp_path):
    torch.manual_seed(0)
    ViTPainModel(tiny_config()).save_pretrained(tmp_path)
    model = ViTPainModel.from_pretrained(tmp_path, output_hidden_states=True, attn_implementation="eager").eval()
    out = model(_pixels())
    assert out.hidden_states is not None and len(out.hidden_states) == 3  # embeddings + 2 layers
    model.config.output_attentions = True
    assert len(model(_pixels()).attentions) == 2
    model.config.return_dict = False
    assert isinstance(model(_pixels()), tuple)
    assert model(_pixels(), return_dict=True).pspi.shape == (2,)  # the call's argument still wins


def test_input_embeddings_are_the_patch_embeddings():
    model = ViTPainModel(tiny_config())
    assert model.get_input_embeddings() is model.backbone.embeddings.patch_embeddings


def test_attention_implementation_switches_and_warns_like_vit():
    from transformers import ViTModel

    model = ViTPainModel(tiny_config()).eval()
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager" == model.backbone.config._attn_implementation
    eager = model(_pixels(), output_attentions=True).attentions
    assert len(eager) == 2 and torch.allclose(eager[0].sum(-1), torch.ones(1))
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa" == model.backbone.config._attn_implementation
    # sdpa forms no maps: like ViTModel, warn (transformers' sdpa integration does) and return none; never raise.
    vit = ViTModel(model.backbone.config, add_pooling_layer=False).eval()
    assert len(model(_pixels(), output_attentions=True).attentions) == len(vit(_pixels(), output_attentions=True).attentions)


def test_flex_attention_loads_like_vit(tmp_path):
    from transformers import ViTModel

    ViTPainModel(tiny_config()).save_pretrained(tmp_path / "pain")
    model = ViTPainModel.from_pretrained(tmp_path / "pain", attn_implementation="flex_attention")
    assert model.config._attn_implementation == "flex_attention" == model.backbone.config._attn_implementation
    ViTModel(model.backbone.config).save_pretrained(tmp_path / "vit")
    assert ViTModel.from_pretrained(tmp_path / "vit", attn_implementation="flex_attention")


def test_lora_keeps_the_checkpoint_weights(tmp_path):
    """Fine-tuning a 3DPain checkpoint (saved without LoRA) with LoRA on: every attention projection loads into the
    LoRA base layer, nothing is re-initialised, and the model computes what the checkpoint computed."""
    torch.manual_seed(0)
    plain = ViTPainModel(tiny_config()).eval()
    plain.save_pretrained(tmp_path)
    lora, info = ViTPainModel.from_pretrained(tmp_path, use_lora=True, output_loading_info=True)
    assert not info["missing_keys"] - {k for k in info["missing_keys"] if "lora_" in k}, info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    weights = dict(lora.named_parameters())
    for name, value in plain.state_dict().items():
        mapped = name
        if any(f".{p}." in name for p in ("q_proj", "k_proj", "v_proj", "o_proj")) and "backbone." in name:
            mapped = name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(weights.get(mapped, lora.state_dict().get(mapped)), value), name
    for name, value in weights.items():
        if "lora_B" in name:
            assert torch.count_nonzero(value) == 0, name  # B = 0: LoRA starts as the identity change
    lora.eval()
    pixels = _pixels()
    assert torch.allclose(lora(pixels).pspi, plain(pixels).pspi, atol=1e-6)
    # And back: a LoRA model saved and loaded keeps its adapters.
    lora.save_pretrained(tmp_path / "lora")
    again = ViTPainModel.from_pretrained(tmp_path / "lora")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in lora.state_dict().items())


def test_lora_parameters_get_gradients_with_reentrant_checkpointing():
    model = ViTPainModel(tiny_config(use_lora=True))
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    model.train()
    model(_pixels(), pspi_labels=torch.tensor([1.0, 4.0])).loss.backward()
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.grad is not None for p in lora.values()), [n for n, p in lora.items() if p.grad is None]


def test_neutral_reference_hidden_states_get_gradients():
    """As a stock ViT's: the hidden states returned are the tensors the pain image's tokens flow through."""
    model = ViTPainModel(tiny_config(use_neutral_reference=True))
    outputs = model(_pixels(), neutral_pixel_values=_pixels(), output_hidden_states=True)
    first = outputs.hidden_states[0]
    first.retain_grad()
    outputs.pspi.sum().backward()
    assert len(outputs.hidden_states) == 3 and first.shape[0] == 2  # embeddings + 2 layers, pain images only
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_neutral_reference_outputs_do_not_depend_on_the_flags():
    torch.manual_seed(0)
    model = ViTPainModel(tiny_config(use_neutral_reference=True)).eval()
    pixels, neutral = _pixels(), _pixels()
    plain = model(pixels, neutral_pixel_values=neutral).pspi
    flagged = model(pixels, neutral_pixel_values=neutral, output_hidden_states=True, output_attentions=True).pspi
    torch.testing.assert_close(plain, flagged)


def test_lora_adapters_missing_from_the_weights_start_as_no_change():
    """Weights missing when loading are started by `_init_weights`: a LoRA B matrix at zero (the model computes what
    its backbone computes), A like peft starts it, nothing left on the meta device."""
    config = tiny_config(use_lora=True)
    model = ViTPainModel.from_pretrained(None, config=config, state_dict={})
    adapters = {name: value for name, value in model.named_parameters() if "lora_" in name}
    assert adapters and all(value.device.type == "cpu" for value in model.parameters())
    for name, value in adapters.items():
        if "lora_B" in name:
            assert torch.count_nonzero(value) == 0, name
        else:  # Kaiming-uniform with a = sqrt(5): bound 1 / sqrt(fan_in), far wider than the 0.02 normal
            bound = value.shape[1] ** -0.5
            assert value.abs().max() <= bound and value.std() > 0.1 * bound, name


def test_processor_takes_per_call_overrides():
    import numpy as np

    processor = ViTPainImageProcessor(size=8)
    image = np.random.default_rng(0).integers(0, 255, (3, 16, 16), dtype=np.uint8)
    out = processor(image, size={"height": 4, "width": 4}, image_mean=[0, 0, 0], image_std=[1, 1, 1],
                    input_data_format="channels_first", return_tensors="pt")["pixel_values"]
    raw = processor(image, do_normalize=False, size=4, input_data_format="channels_first")["pixel_values"]
    assert out.shape == (1, 3, 4, 4) and torch.allclose(out, raw)
    assert processor.size == {"height": 8, "width": 8}  # overrides do not stick
    with pytest.raises(TypeError):
        processor(image, no_such_option=True)


def test_processor_takes_do_convert_rgb_like_vit(tmp_path):
    """As ViT's processor: `do_convert_rgb=True` turns a 4-channel array into RGB (alpha over white); `False` takes
    RGB only and says so for anything else; the setting is saved and loaded with the processor."""
    import numpy as np

    processor = ViTPainImageProcessor(size=8)
    rgba = np.random.default_rng(0).integers(0, 255, (16, 16, 4), dtype=np.uint8)
    converted = processor(rgba, do_convert_rgb=True)["pixel_values"]
    assert converted.shape == (1, 3, 8, 8) and torch.equal(converted, processor(rgba)["pixel_values"])
    assert processor(rgba[..., :3], do_convert_rgb=False)["pixel_values"].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="4 channel.*do_convert_rgb=False"):
        processor(rgba, do_convert_rgb=False)
    ViTPainImageProcessor(size=8, do_convert_rgb=False).save_pretrained(tmp_path)
    assert ViTPainImageProcessor.from_pretrained(tmp_path).do_convert_rgb is False


def test_declares_modalities_and_split_modules():
    assert ViTPainModel.input_modalities in ("image", ("image",), ["image"])
    assert "ViTLayer" in ViTPainModel._no_split_modules


def test_forward_is_features_then_head():
    model = ViTPainModel(tiny_config()).eval()
    pixels = _pixels()
    features = model.forward_features(pixels)
    head = model.forward_head(features)
    full = model(pixels)
    assert torch.equal(head.pspi, full.pspi) and torch.equal(head.action_units, full.action_units)
    assert torch.equal(features.last_hidden_state, full.last_hidden_state)


# ---- transformers' ModelTesterMixin ----------------------------------------------------------------------------------


def _transformers_tests():
    """transformers' `tests` package from its source distribution, as an importable package (the sdist leaves out
    the exporter and generation test folders the common module imports: empty stand-ins replace them)."""
    source = os.environ.get("TRANSFORMERS_TESTS_DIR")
    if not source or not (Path(source) / "test_modeling_common.py").is_file():
        return None
    root = Path(tempfile.mkdtemp(prefix="transformers-tests-"))
    package = root / "transformers_tests"
    shutil.copytree(source, package, ignore=shutil.ignore_patterns("models", "fixtures"))
    for folder, module, body in (("exporters", "test_export", "class ExportTesterMixin:\n    pass\n"),
                                 ("generation", "test_utils", "class GenerationTesterMixin:\n    pass\n")):
        (package / folder).mkdir(exist_ok=True)
        (package / folder / "__init__.py").touch()
        if not (package / folder / f"{module}.py").is_file():
            (package / folder / f"{module}.py").write_text(body)
    (package / "__init__.py").touch()
    sys.path.insert(0, str(root))
    return importlib.import_module("transformers_tests.test_modeling_common")


common = _transformers_tests()


class ViTPainModelTester:
    """The shapes transformers' ViT tests use (batch 13, 30 px, patch 2, hidden 32, 2 layers, 4 heads), for one of the
    configurations users get (`config_kwargs`: the default, a neutral reference, LoRA, a DINOv2 backbone)."""

    def __init__(self, parent, batch_size=13, **config_kwargs):
        self.parent = parent
        self.batch_size = batch_size
        self.config_kwargs = config_kwargs
        self.num_hidden_layers = BACKBONE["num_hidden_layers"]
        self.num_attention_heads = BACKBONE["num_attention_heads"]
        self.hidden_size = BACKBONE["hidden_size"]
        self.image_size = BACKBONE["image_size"]
        self.seq_length = (BACKBONE["image_size"] // BACKBONE["patch_size"]) ** 2 + 1
        self.is_training = True

    def get_config(self):
        return tiny_config(**self.config_kwargs)

    def prepare_config_and_inputs_for_common(self):
        config = self.get_config()
        shape = [self.batch_size, 3, self.image_size, self.image_size]
        inputs = {"pixel_values": common.floats_tensor(shape)}
        if config.use_neutral_reference:
            inputs["neutral_pixel_values"] = common.floats_tensor(shape)
        return config, inputs


if common is not None:

    class ViTPainModelTest(common.ModelTesterMixin, unittest.TestCase):
        all_model_classes = (ViTPainModel,)
        test_resize_embeddings = False  # no token embeddings
        test_torch_exportable = False
        has_attentions = True
        test_can_init_all_missing_weights_before_2023 = True  # the model files carry no copyright year: run it

        config_kwargs: dict = {}

        def setUp(self):
            self.model_tester = ViTPainModelTester(self, **self.config_kwargs)

        def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
            inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
            if return_labels:  # ViTPain's own labels, as ViT's tests add `labels` for its classifier
                labels = torch.Generator().manual_seed(0)  # the same labels on every call
                inputs["pspi_labels"] = torch.rand(self.model_tester.batch_size, generator=labels) * 16
                inputs["action_unit_labels"] = torch.rand(self.model_tester.batch_size, 6, generator=labels) * 5
            return inputs

        def test_model_get_set_embeddings(self):  # as transformers' ViT tests: patch embeddings, no token embeddings
            config, _ = self.model_tester.prepare_config_and_inputs_for_common()
            model = ViTPainModel(config)
            self.assertIsInstance(model.get_input_embeddings(), torch.nn.Module)
            self.assertIsNone(model.get_output_embeddings())

    class ViTPainNeutralReferenceModelTest(ViTPainModelTest):
        """The pain image's tokens attend to a neutral image's (one backbone pass over both)."""

        config_kwargs = {"use_neutral_reference": True}
        additional_model_inputs = ["neutral_pixel_values"]  # what transformers' tests pass besides pixel_values

    class ViTPainDifferenceFusionModelTest(ViTPainModelTest):
        """The backbone sees the pain image stacked with its difference from the neutral image."""

        config_kwargs = {"use_neutral_reference": True, "neutral_fusion": "difference"}
        additional_model_inputs = ["neutral_pixel_values"]

    class ViTPainLoRAModelTest(ViTPainModelTest):
        """LoRA adapters (peft) in a frozen backbone."""

        config_kwargs = {"use_lora": True}

        def test_retain_grad_hidden_states_attentions(self):
            """As transformers' test, one state later: the frozen patch embeddings' output (hidden state 0) needs no
            gradient, as in any peft model; the first adapted layer's output and attention map get one."""
            config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
            config.output_hidden_states = config.output_attentions = True
            model = ViTPainModel._from_config(config, attn_implementation="eager")
            outputs = model(**inputs)
            assert not outputs.hidden_states[0].requires_grad
            hidden_states, attentions = outputs.hidden_states[1], outputs.attentions[0]
            hidden_states.retain_grad()
            attentions.retain_grad()
            outputs[0].flatten()[0].backward()
            self.assertIsNotNone(hidden_states.grad)
            self.assertIsNotNone(attentions.grad)

    class ViTPainDinov2ModelTest(ViTPainModelTest):
        """A DINOv2 backbone (no mask token, no position interpolation flag)."""

        config_kwargs = {"backbone_config": {**{k: v for k, v in BACKBONE.items() if k != "intermediate_size"},
                                             "model_type": "dinov2", "mlp_ratio": 1}}

else:

    def test_transformers_common_model_tests():
        pytest.skip(
            "transformers' common model tests are not here: `pip download --no-deps --no-binary :all: "
            "transformers==<installed>`, unpack it and set TRANSFORMERS_TESTS_DIR=<unpacked>/tests (CI does)."
        )
