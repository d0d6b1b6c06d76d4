"""ViTPain: a ViT / DINOv2 backbone with pain heads (PSPI, pain thresholds, action-unit queries).

This file travels alone as remote code (``trust_remote_code=True``): it imports ``torch``, ``transformers``, ``peft``
(only when LoRA is on) and its sibling ``configuration_vitpain`` through a relative import.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, Dinov2Model, PreTrainedModel, ViTModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_vitpain import ViTPainConfig


class CheckpointMismatchError(Exception):
    """A checkpoint's weights do not fit the model (missing or unknown keys). Not a ValueError on purpose:
    `pipeline()` retries every model class on a ValueError and buries the one line in tracebacks."""


@dataclass(frozen=True)
class BackboneSpec:
    """How ViTPain builds and calls one backbone family (keyed by the backbone config's `model_type`)."""

    model_class: type[PreTrainedModel]
    build_kwargs: dict = field(default_factory=dict)  # constructor arguments besides the config
    config_overrides: dict = field(default_factory=dict)  # config values that keep unused parameters out
    forward_kwargs: dict = field(default_factory=dict)
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    patch_projection: str = "embeddings.patch_embeddings.projection"  # the Conv2d that sees the pixels
    num_prefix_tokens: int = 1  # tokens before the patch tokens (the [CLS] token)


BACKBONES: dict[str, BackboneSpec] = {
    # No pooler: ViTPain pools the [CLS] token itself, and an unused pooler would get no gradient.
    "vit": BackboneSpec(
        ViTModel, build_kwargs={"add_pooling_layer": False}, forward_kwargs={"interpolate_pos_encoding": True}
    ),
    # The mask token only serves masked-image pre-training.
    "dinov2": BackboneSpec(Dinov2Model, config_overrides={"use_mask_token": False}),
}


def get_backbone_spec(backbone_type: str) -> BackboneSpec:
    """The registry entry of `backbone_type`, or one clear error listing the known ones."""
    if backbone_type not in BACKBONES:
        raise ValueError(f"Unsupported backbone {backbone_type!r}: ViTPain knows {sorted(BACKBONES)}.")
    return BACKBONES[backbone_type]


@dataclass
class ViTPainOutput(ModelOutput):
    r"""
    Output of [`ViTPainModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Weighted sum of the PSPI regression, AU regression and pain-threshold losses that had labels.
        pspi (`torch.FloatTensor` of shape `(batch_size,)`):
            Predicted PSPI score, bounded to [0, `config.pspi_max`] (16).
        action_units (`torch.FloatTensor` of shape `(batch_size, num_aus)`):
            Predicted AU intensities in FACS units, column `i` is `config.au_names[i]`, bounded to
            [0, `config.au_max_intensity[i]`].
        pain_logits (`torch.FloatTensor` of shape `(batch_size, num_thresholds)`):
            Logit of `PSPI >= config.pain_thresholds[t]` in column `t` (sigmoid gives the probability).
        pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The [CLS] feature the PSPI and pain heads read (after the neutral-reference attention when used).
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + num_patches, hidden_size)`):
            All tokens the heads read (after the neutral-reference attention when used).
        au_attentions (`torch.FloatTensor` of shape `(batch_size, num_aus, num_patches)`):
            Each AU query's softmax attention over the patch tokens (row-major patch grid), for interpretability.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Backbone hidden states of the pain image, returned with `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Backbone self-attention maps of the pain image, returned with `output_attentions=True` (needs
            `attn_implementation="eager"`).
    """

    loss: torch.FloatTensor | None = None
    pspi: torch.FloatTensor | None = None
    action_units: torch.FloatTensor | None = None
    pain_logits: torch.FloatTensor | None = None
    pooled_output: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    au_attentions: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ViTPainFeatures(ModelOutput):
    r"""
    Output of [`ViTPainModel.forward_features`]: what the heads (and a distillation loss) read.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + num_patches, hidden_size)`):
            All tokens of the pain image (after the neutral-reference attention when used).
        pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The [CLS] token: what the PSPI and pain heads read.
        hidden_states, attentions (`tuple(torch.FloatTensor)`, *optional*):
            Backbone hidden states / attention maps of the pain image, when requested.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooled_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class SharedMaskDropout(nn.Module):
    """
    Dropout (keep probability 1 - p, survivors scaled by 1 / (1 - p)) that returns the same output when called again on
    the very same tensor. The q, k and v LoRA adapters of an attention block read one input, so they share one mask,
    exactly as a LoRA adapter on a fused qkv projection (timm, the official ViTPain) does; on CPU a mask costs about
    as much as the adapter's matmuls, so this saves two of three.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}.")
        self.p = p
        self._last: tuple | None = None  # weak references: (input, output, input version)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return hidden_states
        if self._last is not None:
            last_input, last_output, version = self._last[0](), self._last[1](), self._last[2]
            if last_input is hidden_states and last_output is not None and version == hidden_states._version:
                return last_output
        # A uniform draw and a compare: about twice as fast as bernoulli_ on CPU, same distribution.
        mask = torch.rand_like(hidden_states).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        output = hidden_states * mask
        self._last = (weakref.ref(hidden_states), weakref.ref(output), hidden_states._version)
        return output

    def extra_repr(self) -> str:
        return f"p={self.p}, mask shared by calls on the same tensor"


class NeutralReferenceAttention(nn.Module):
    """Pain-image tokens (queries) attend to the neutral face's tokens (keys / values); residual + LayerNorm."""

    def __init__(self, config: ViTPainConfig):
        super().__init__()
        hidden_size = config.backbone_config.hidden_size
        self.attention = nn.MultiheadAttention(
            hidden_size, config.neutral_attention_heads, dropout=config.head_dropout, batch_first=True
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, pain_tokens: torch.Tensor, neutral_tokens: torch.Tensor) -> torch.Tensor:
        # need_weights=False keeps torch on its fused scaled-dot-product path.
        attended, _ = self.attention(pain_tokens, neutral_tokens, neutral_tokens, need_weights=False)
        return self.norm(pain_tokens + attended)


class PSPIHead(nn.Module):
    """[CLS] feature -> PSPI in [0, pspi_max] (a sigmoid keeps it in range)."""

    def __init__(self, config: ViTPainConfig):
        super().__init__()
        hidden_size = config.backbone_config.hidden_size
        self.mlp = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Dropout(config.head_dropout),
            nn.Linear(hidden_size, config.head_hidden_size),
            nn.GELU(),
            nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden_size, 1),
        )
        self.pspi_max = config.pspi_max

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(pooled_output).squeeze(-1)) * self.pspi_max


class PainThresholdHeads(nn.Module):
    """One linear pain/no-pain head per PSPI threshold (row `t` of the weight is the head of threshold `t`)."""

    def __init__(self, config: ViTPainConfig):
        super().__init__()
        hidden_size = config.backbone_config.hidden_size
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(hidden_size, len(config.pain_thresholds))

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.norm(pooled_output)))


class AUQueryHead(nn.Module):
    """Learned per-AU queries attend over the patch tokens; a shared MLP turns each attended feature into intensity."""

    def __init__(self, config: ViTPainConfig):
        super().__init__()
        hidden_size = config.backbone_config.hidden_size
        self.queries = nn.Parameter(torch.zeros(len(config.au_names), hidden_size))
        self.scale = hidden_size**-0.5
        self.shared = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Dropout(config.head_dropout),
            nn.Linear(hidden_size, config.au_head_hidden_size),
            nn.GELU(),
            nn.Dropout(config.head_dropout),
        )
        self.intensity = nn.Linear(config.au_head_hidden_size, 1)
        self.au_max_intensity = list(config.au_max_intensity)

    def forward(self, patch_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.einsum("ad,bnd->ban", self.queries, patch_tokens) * self.scale
        attentions = scores.softmax(dim=-1)
        attended = torch.bmm(attentions, patch_tokens)  # (batch, num_aus, hidden)
        raw = self.intensity(self.shared(attended)).squeeze(-1)
        # Built per call rather than stored as a buffer: the bounds are config facts, not weights.
        au_max = raw.new_tensor(self.au_max_intensity)
        return torch.sigmoid(raw) * au_max, attentions


class ViTPainPreTrainedModel(PreTrainedModel):
    """Weight initialisation and `from_pretrained` plumbing shared by ViTPain models."""

    config_class = ViTPainConfig
    base_model_prefix = "vitpain"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["ViTEmbeddings", "ViTLayer", "Dinov2Embeddings", "Dinov2Layer"]
    # The backbone runs every attention kernel its family supports; ViTPain's own attention (neutral reference, AU
    # queries) is plain torch and does not depend on the choice.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers guesses from the source (an `*Attention(nn.Module)` class without the attention interface):
        # ViTPain's `NeutralReferenceAttention` is not a backbone kernel, and the backbone itself can switch.
        return True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        lora_role = getattr(module, "_lora_role", None)
        if lora_role == "A":  # peft's own start for A: Kaiming-uniform, as nn.Linear starts
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif lora_role == "B":  # LoRA starts as no change: B = 0
            init.zeros_(module.weight)
        else:
            super()._init_weights(module)
        if isinstance(module, AUQueryHead):
            init.trunc_normal_(module.queries, std=self.config.initializer_range)

    @torch.no_grad()
    def initialize_weights(self) -> None:
        # LoRA adapters sit inside the backbone, whose own `_init_weights` would start them as plain Linear layers
        # (B != 0): start them here first (marked initialised, so the backbone's pass skips them).
        for module in self.modules():
            if getattr(module, "_lora_role", None):
                self._initialize_weights(module)
        super().initialize_weights()


class ViTPainModel(ViTPainPreTrainedModel):
    r"""
    ViTPain: estimates pain (PSPI, pain/no-pain at several PSPI thresholds) and facial action units from a face image
    or a pain-region heatmap, optionally against a neutral image of the same face.

    Args:
        config ([`ViTPainConfig`]): the model configuration; it owns every hyper-parameter.
        backbone ([`PreTrainedModel`], *optional*): an already built (e.g. pretrained) backbone of the type
            `config.backbone_config` describes; built from the config with random weights when omitted.
    """

    def __init__(self, config: ViTPainConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        self.backbone_spec = get_backbone_spec(config.backbone_type)
        if backbone is not None:
            for module in backbone.modules():  # a given backbone keeps its weights: post_init skips marked modules
                module._is_hf_initialized = True
        self.backbone = backbone if backbone is not None else self._build_backbone(config)
        if self.backbone.config.hidden_size != config.backbone_config.hidden_size:
            raise ValueError("The given backbone does not match config.backbone_config (hidden_size differs).")
        self.neutral_attention = (
            NeutralReferenceAttention(config) if config.use_neutral_reference and not config.fuses_difference else None
        )
        self.pspi_head = PSPIHead(config)
        self.pain_heads = PainThresholdHeads(config)
        self.au_head = AUQueryHead(config)
        if config.use_lora:  # before post_init, so `_init_weights` starts the adapters (and starts missing ones alike)
            self._add_lora(config)
        self.post_init()
        if config.freeze_backbone and not config.use_lora:
            self.backbone.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        """The backbone's patch embeddings (the module that reads the pixels)."""
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, every_n_layers=1, offload=False):
        super().activation_checkpointing_enable(activation_checkpointing_kwargs, every_n_layers, offload)
        # Reentrant checkpointing only back-propagates into a block whose input needs a gradient; with a frozen
        # (LoRA or frozen) backbone nothing before the first block does, so make the patch embeddings' output need one.
        reentrant = (activation_checkpointing_kwargs or {}).get("use_reentrant", False)
        if reentrant and (self.config.use_lora or self.config.freeze_backbone):
            self.enable_input_require_grads()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing weights that do not fit: a checkpoint that misses any of the
        model's weights (its heads would start random) or holds weights the model has no place for raises one
        `CheckpointMismatchError` naming the keys, where transformers would only print a load report. A caller that
        asks for the report (`output_loading_info=True`) gets it instead, as transformers returns it, to judge itself.

        Asking for LoRA (`use_lora=True` or a `config=` with it) on a checkpoint saved without LoRA (fine-tuning a
        3DPain model) loads the checkpoint as saved, then adds the adapters: every attention projection keeps its
        weights as LoRA's base layer, and the adapters start as no change."""
        wants_info = kwargs.pop("output_loading_info", False)
        saved = _saved_config(cls, pretrained_model_name_or_path, kwargs)
        config = kwargs.get("config")
        requested = kwargs["use_lora"] if "use_lora" in kwargs else getattr(config, "use_lora", None)
        add_lora = bool(requested) and saved is not None and not saved.use_lora
        if add_lora:
            if "use_lora" in kwargs:
                kwargs["use_lora"] = False
            if isinstance(config, ViTPainConfig):
                kwargs["config"] = config = copy.deepcopy(config)
                config.use_lora = False
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
        )
        # None: the caller passed the weights (or none) on purpose; a caller asking for the report reads it itself
        if pretrained_model_name_or_path is not None and not wants_info:
            _refuse_weights_that_do_not_fit(pretrained_model_name_or_path, info)
        if add_lora:
            model.config.use_lora = True
            model._add_lora(model.config)
        return (model, info) if wants_info else model

    def _build_backbone(self, config: ViTPainConfig) -> PreTrainedModel:
        for key, value in self.backbone_spec.config_overrides.items():
            setattr(config.backbone_config, key, value)
        return self.backbone_spec.model_class(config.backbone_config, **self.backbone_spec.build_kwargs)

    def _add_lora(self, config: ViTPainConfig) -> None:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError as error:
            raise ImportError("config.use_lora=True needs peft: `pip install peft`.") from error
        target_modules = config.lora_target_modules or list(self.backbone_spec.lora_target_modules)
        lora_config = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=target_modules,
            bias="none",
        )
        inject_adapter_in_model(lora_config, self.backbone)
        for module in self.backbone.modules():
            for role in ("A", "B"):  # `_init_weights` starts these (A random, B = 0), also when loading misses them
                adapters = getattr(module, f"lora_{role}", None)
                for adapter in adapters.values() if isinstance(adapters, nn.ModuleDict) else ():
                    adapter._lora_role = role
        if config.lora_dropout > 0:
            # One module for all adapters: q/k/v adapters read the same tensor, so they share one mask.
            shared_dropout = SharedMaskDropout(config.lora_dropout)
            for module in self.backbone.modules():
                if isinstance(getattr(module, "lora_dropout", None), nn.ModuleDict):
                    for adapter_name in module.lora_dropout:
                        module.lora_dropout[adapter_name] = shared_dropout
        # peft marks only the adapters trainable; say so explicitly so the contract does not hang on peft's default.
        for name, parameter in self.backbone.named_parameters():
            parameter.requires_grad_("lora_" in name)

    @classmethod
    def from_backbone(
        cls, backbone_name_or_path: str, config: ViTPainConfig | None = None, **config_kwargs
    ) -> ViTPainModel:
        """
        Build a ViTPain whose backbone starts from pretrained ViT / DINOv2 weights (a local folder or a Hub id); the
        heads (and LoRA adapters, if `use_lora=True`) start random. With `input_modality="heatmap"` a 3-channel patch
        embedding is summed over its input channels so a 1-channel heatmap sees the same filters.

        Args:
            backbone_name_or_path: anything `AutoModel.from_pretrained` accepts for a `vit` / `dinov2` checkpoint.
            config: a ViTPain config to take the head settings from (its backbone config is replaced).
            config_kwargs: ViTPainConfig arguments (e.g. `use_lora=True`, `input_modality="heatmap"`).
        """
        settings = config.to_dict() if config is not None else {}
        for key in ("backbone_config", "model_type", "transformers_version", "architectures", "auto_map"):
            settings.pop(key, None)
        settings.update(config_kwargs)
        backbone_config = AutoConfig.from_pretrained(backbone_name_or_path)
        spec = get_backbone_spec(backbone_config.model_type)
        load_kwargs = {**spec.build_kwargs, **spec.config_overrides}
        if "attn_implementation" in settings:
            load_kwargs["attn_implementation"] = settings["attn_implementation"]
        backbone = spec.model_class.from_pretrained(backbone_name_or_path, **load_kwargs)
        if settings.get("input_modality") == "heatmap" and backbone.config.num_channels == 3:
            _adapt_patch_projection(backbone, spec, lambda rgb: rgb.sum(dim=1, keepdim=True))
        fuses_difference = settings.get("use_neutral_reference") and settings.get("neutral_fusion") == "difference"
        if fuses_difference:  # difference channels start at zero: at first the model is the pretrained backbone
            _adapt_patch_projection(backbone, spec, lambda weight: torch.cat([weight, torch.zeros_like(weight)], dim=1))
        vitpain_config = ViTPainConfig(
            backbone_config=backbone.config, backbone_checkpoint=str(backbone_name_or_path), **settings
        )
        return cls(vitpain_config, backbone=backbone)

    def forward_features(
        self,
        pixel_values: torch.Tensor,
        neutral_pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
    ) -> ViTPainFeatures:
        """The backbone (and the neutral reference): every token of the pain image, plus hidden states / attention
        maps when requested (layer indices select hidden states, as transformers' backbones take them)."""
        self._check_inputs(pixel_values, neutral_pixel_values)
        batch_size = pixel_values.shape[0]
        backbone_kwargs = dict(self.backbone_spec.forward_kwargs)
        if output_hidden_states:
            backbone_kwargs["output_hidden_states"] = output_hidden_states
        if output_attentions:
            backbone_kwargs["output_attentions"] = True  # fused kernels form no maps: the backbone warns
        # The neutral image's own pass: joined with the pain image's (shared weights, larger matmuls run faster)
        # unless hidden states or attentions are asked for, which must be the very tensors the pain tokens flow
        # through (rows sliced off a joint pass would get no gradient).
        joint_pass = not (output_hidden_states or output_attentions)
        neutral_tokens = None
        if self.config.fuses_difference:  # early fusion: the expression change is an input, not something to find
            images = torch.cat([pixel_values, pixel_values - neutral_pixel_values], dim=1)
        elif neutral_pixel_values is not None and joint_pass:
            images = torch.cat([pixel_values, neutral_pixel_values])
        else:
            images = pixel_values
            if neutral_pixel_values is not None:
                forward_kwargs = self.backbone_spec.forward_kwargs
                neutral_tokens = self.backbone(neutral_pixel_values, **forward_kwargs).last_hidden_state
        backbone_outputs = self.backbone(images, **backbone_kwargs)
        tokens = backbone_outputs.last_hidden_state
        hidden_states = getattr(backbone_outputs, "hidden_states", None) if output_hidden_states else None
        attentions = getattr(backbone_outputs, "attentions", None) if output_attentions else None
        if self.neutral_attention is not None:
            if neutral_tokens is None:
                tokens, neutral_tokens = tokens[:batch_size], tokens[batch_size:]
            tokens = self.neutral_attention(tokens, neutral_tokens)
        return ViTPainFeatures(
            last_hidden_state=tokens, pooled_output=tokens[:, 0], hidden_states=hidden_states, attentions=attentions
        )

    def forward_head(
        self,
        features: ViTPainFeatures,
        pspi_labels: torch.Tensor | None = None,
        action_unit_labels: torch.Tensor | None = None,
    ) -> ViTPainOutput:
        """The heads on the features: PSPI from the [CLS] token, one logit per pain threshold, AU queries over the
        patch tokens; the loss when labels are given."""
        tokens, pooled_output = features.last_hidden_state, features.pooled_output
        pspi = self.pspi_head(pooled_output)
        pain_logits = self.pain_heads(pooled_output)
        action_units, au_attentions = self.au_head(tokens[:, self.backbone_spec.num_prefix_tokens :])
        loss = None
        if pspi_labels is not None or action_unit_labels is not None:
            loss = self.compute_loss(pspi, action_units, pain_logits, pspi_labels, action_unit_labels)
        return ViTPainOutput(
            loss=loss,
            pspi=pspi,
            action_units=action_units,
            pain_logits=pain_logits,
            pooled_output=pooled_output,
            last_hidden_state=tokens,
            au_attentions=au_attentions,
            hidden_states=features.hidden_states,
            attentions=features.attentions,
        )

    def forward(
        self,
        pixel_values: torch.Tensor,
        neutral_pixel_values: torch.Tensor | None = None,
        pspi_labels: torch.Tensor | None = None,
        action_unit_labels: torch.Tensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ViTPainOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                Pain image(s) from [`ViTPainImageProcessor`]: 3 normalised channels for RGB, 1 channel of
                millimetres / `heatmap_scale_mm` for heatmaps.
            neutral_pixel_values (`torch.FloatTensor`, same shape as `pixel_values`, *optional*):
                Neutral image of the same face and view; required iff `config.use_neutral_reference`.
            pspi_labels (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
                Target PSPI (0-16). Enables the PSPI regression and the pain-threshold losses.
            action_unit_labels (`torch.FloatTensor` of shape `(batch_size, num_aus)`, *optional*):
                Target AU intensities (FACS units, columns in `config.au_names` order). Enables the AU loss.
            output_hidden_states (`bool` or `list[int]`, *optional*):
                Return the backbone's hidden states of the pain image (all, or those layer indices; other entries
                are `None`). Defaults to `config.output_hidden_states`.
            output_attentions (`bool`, *optional*):
                Return the backbone's attention maps (they need `attn_implementation="eager"`; fused kernels warn and
                return none). Defaults to `config.output_attentions`.
            return_dict (`bool`, *optional*):
                Return a plain tuple when `False`. Defaults to `config.return_dict`.
        """
        config = self.config
        if output_hidden_states is None:
            output_hidden_states = config.output_hidden_states
        if output_attentions is None:
            output_attentions = config.output_attentions
        return_dict = return_dict if return_dict is not None else getattr(config, "return_dict", True)
        features = self.forward_features(pixel_values, neutral_pixel_values, output_hidden_states, output_attentions)
        output = self.forward_head(features, pspi_labels, action_unit_labels)
        return output if return_dict else output.to_tuple()

    def compute_loss(
        self,
        pspi: torch.Tensor,
        action_units: torch.Tensor,
        pain_logits: torch.Tensor,
        pspi_labels: torch.Tensor | None = None,
        action_unit_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Weighted multi-task loss: MSE of PSPI / pspi_max, mean binary cross-entropy of the threshold heads against
        `pspi_labels >= threshold`, and MSE of AU intensity / its maximum. Terms without labels are left out.
        """
        config = self.config
        loss = pspi.new_zeros(())
        if pspi_labels is not None:
            pspi_labels = pspi_labels.to(pspi.dtype).reshape(pspi.shape)
            # Normalised so the three terms have comparable scales (all within [0, 1] before weighting).
            loss = loss + config.pspi_loss_weight * F.mse_loss(pspi / config.pspi_max, pspi_labels / config.pspi_max)
            thresholds = pain_logits.new_tensor(config.pain_thresholds)
            pain_targets = (pspi_labels.unsqueeze(-1) >= thresholds).to(pain_logits.dtype)
            loss = loss + config.pain_loss_weight * F.binary_cross_entropy_with_logits(pain_logits, pain_targets)
        if action_unit_labels is not None:
            action_unit_labels = action_unit_labels.to(action_units.dtype)
            if action_unit_labels.shape != action_units.shape:
                raise ValueError(
                    f"action_unit_labels has shape {tuple(action_unit_labels.shape)}; expected "
                    f"{tuple(action_units.shape)} (batch, one column per AU in {config.au_names})."
                )
            au_max = action_units.new_tensor(config.au_max_intensity)
            loss = loss + config.au_loss_weight * F.mse_loss(action_units / au_max, action_unit_labels / au_max)
        return loss

    def _check_inputs(self, pixel_values: torch.Tensor, neutral_pixel_values: torch.Tensor | None) -> None:
        config = self.config
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
            raise ValueError(
                "pixel_values must be a (batch, channels, height, width) tensor: preprocess images with "
                "ViTPainImageProcessor."
            )
        if pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels but this model (input_modality="
                f"{config.input_modality!r}) expects {config.num_channels}: preprocess with "
                f"ViTPainImageProcessor(input_modality={config.input_modality!r})."
            )
        if config.use_neutral_reference and neutral_pixel_values is None:
            raise ValueError(
                "This model compares against a neutral face (config.use_neutral_reference=True): pass "
                "neutral_pixel_values (a neutral image of the same face and view)."
            )
        if not config.use_neutral_reference and neutral_pixel_values is not None:
            raise ValueError(
                "This model has no neutral-reference branch (config.use_neutral_reference=False): drop "
                "neutral_pixel_values or use a model trained with a neutral reference."
            )
        if neutral_pixel_values is not None and neutral_pixel_values.shape != pixel_values.shape:
            raise ValueError(
                f"neutral_pixel_values has shape {tuple(neutral_pixel_values.shape)} but pixel_values has "
                f"{tuple(pixel_values.shape)}: give one neutral image per pain image, processed the same way."
            )


def _refuse_weights_that_do_not_fit(source, info: dict) -> None:
    """One line naming the weights a checkpoint misses or holds beyond the model (transformers only reports them)."""
    missing, unexpected = sorted(info.get("missing_keys") or ()), sorted(info.get("unexpected_keys") or ())
    if not missing and not unexpected:
        return
    problems = [f"{label} {_some(keys)}" for label, keys in (("misses", missing), ("holds unknown", unexpected)) if keys]
    raise CheckpointMismatchError(
        f"The weights in {source} do not fit this ViTPain model: the checkpoint {' and '.join(problems)}. Refusing to "
        "run with random weights: load a folder a ViTPain training script wrote, unedited (new heads on a pretrained "
        "backbone: ViTPainModel.from_backbone)."
    )


def _some(keys: list[str], shown: int = 4) -> str:
    """`a, b, c, d and 7 more`: enough keys to recognise the problem on one line."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _saved_config(cls, pretrained_model_name_or_path, kwargs: dict) -> ViTPainConfig | None:
    """The config saved with a checkpoint (None when it cannot be read here; `from_pretrained` then reports why)."""
    hub = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "token", "subfolder") if k in kwargs}
    try:
        return cls.config_class.from_pretrained(pretrained_model_name_or_path, **hub)
    except (OSError, ValueError):
        return None


def _adapt_patch_projection(backbone: PreTrainedModel, spec: BackboneSpec, new_weight) -> None:
    """Replace the backbone's patch embedding by one whose kernel is `new_weight(old kernel)` (same bias), e.g. summed
    over RGB for a 1-channel heatmap (same response to a gray image), or widened with zero difference channels."""
    parent_name, _, attribute = spec.patch_projection.rpartition(".")
    parent = backbone.get_submodule(parent_name)
    old = getattr(parent, attribute)
    with torch.no_grad():
        weight = new_weight(old.weight)
    projection = nn.Conv2d(
        weight.shape[1], old.out_channels, kernel_size=old.kernel_size, stride=old.stride, bias=old.bias is not None
    )
    with torch.no_grad():
        projection.weight.copy_(weight)
        if old.bias is not None:
            projection.bias.copy_(old.bias)
    setattr(parent, attribute, projection)
    if hasattr(parent, "num_channels"):
        parent.num_channels = weight.shape[1]
    backbone.config.num_channels = weight.shape[1]


__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "CheckpointMismatchError",
    "ViTPainFeatures",
    "ViTPainModel",
    "ViTPainOutput",
    "ViTPainPreTrainedModel",
]
