"""ViTPain model configuration.

This file travels alone as remote code (``trust_remote_code=True``): it imports only ``transformers``.
"""

from __future__ import annotations

import math
import numbers

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# The model side keeps its own copy of the FACS facts: it cannot import `generation` (it travels alone).
DEFAULT_AU_NAMES = ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")
# FACS intensity 0-5 (A-E as 1-5); AU43 (eyes closed) is 0 or 1.
DEFAULT_AU_MAX_INTENSITY = {"AU43": 1.0}
AU_INTENSITY_MAX = 5.0
DEFAULT_PAIN_THRESHOLDS = (1.0, 2.0, 3.0)
INPUT_MODALITIES = {"rgb": 3, "heatmap": 1}  # modality -> channels of `pixel_values`
# How a neutral reference enters: late cross-attention of the pain tokens to the neutral tokens, or early fusion where
# the backbone sees the pain image stacked with its difference from the neutral image (twice the channels).
NEUTRAL_FUSIONS = ("cross_attention", "difference")

# The pipeline task ViTPain registers (modeling_vitpain/__init__.py) and saved folders record under `custom_pipelines`.
PIPELINE_TASK = "pain-estimation"

# ViT-S/16 at 224 px: the size the model card and the benchmark talk about.
DEFAULT_BACKBONE_CONFIG = {
    "model_type": "vit",
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
    "image_size": 224,
    "patch_size": 16,
    "layer_norm_eps": 1e-6,
}


class ViTPainConfig(PretrainedConfig):
    r"""
    Configuration of a [`ViTPainModel`]: a ViT / DINOv2 backbone plus pain heads (PSPI regression, one pain/no-pain
    head per PSPI threshold, an action-unit query head).

    Args:
        backbone_config (`dict` or `PretrainedConfig`, *optional*):
            Configuration of the backbone. A dict needs a `model_type` that the model's backbone registry knows
            (`"vit"` or `"dinov2"`); missing keys take that config class's defaults. Defaults to a ViT-S/16 at 224 px
            (hidden 384, 12 layers, 6 heads), randomly initialised.
        backbone_type (`str`, *optional*):
            Shorthand for `backbone_config={"model_type": backbone_type}` when `backbone_config` carries no
            `model_type`.
        backbone_checkpoint (`str`, *optional*):
            Path or Hub id the backbone weights were first loaded from (provenance only: loading a ViTPain folder never
            downloads it again). Set by [`ViTPainModel.from_backbone`].
        input_modality (`str`, *optional*, defaults to `"rgb"`):
            `"rgb"` (3-channel face images) or `"heatmap"` (1-channel pain-region heatmaps in millimetres).
        use_neutral_reference (`bool`, *optional*, defaults to `False`):
            If `True`, the pain image's tokens attend to the tokens of a neutral image of the same face (same
            backbone, shared weights) and `neutral_pixel_values` is required.
        neutral_fusion (`str`, *optional*, defaults to `"cross_attention"`):
            How the neutral reference enters (with `use_neutral_reference=True`). `"cross_attention"`: after the
            backbone, the pain image's tokens attend to the neutral image's tokens. `"difference"`: early fusion, the
            backbone sees the pain image stacked with `pain - neutral` (twice the channels, one backbone pass), which
            makes the expression change explicit and trains far faster from scratch.
        neutral_attention_heads (`int`, *optional*):
            Heads of the neutral-reference cross-attention. Defaults to the backbone's number of heads.
        au_names (`list[str]`, *optional*, defaults to `["AU4", "AU6", "AU7", "AU9", "AU10", "AU43"]`):
            Action units the AU head predicts, in output order.
        au_max_intensity (`list[float]`, *optional*):
            Upper bound of each AU's intensity (FACS units). Defaults to 5 for every AU and 1 for AU43.
        pspi_max (`float`, *optional*, defaults to 16.0):
            Upper bound of the PSPI head (PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43 ranges 0-16).
        pain_thresholds (`list[float]`, *optional*, defaults to `[1.0, 2.0, 3.0]`):
            One pain head per threshold: head `t` predicts the logit of `PSPI >= pain_thresholds[t]`.
        head_hidden_size (`int`, *optional*, defaults to 512):
            Hidden width of the PSPI regression MLP.
        au_head_hidden_size (`int`, *optional*, defaults to 512):
            Hidden width of the MLP shared by all AU queries.
        head_dropout (`float`, *optional*, defaults to 0.1):
            Dropout probability in the heads.
        use_lora (`bool`, *optional*, defaults to `False`):
            Train LoRA adapters (peft) in the backbone instead of the backbone itself; its weights are frozen.
        lora_rank (`int`, *optional*, defaults to 8):
            LoRA rank.
        lora_alpha (`float`, *optional*, defaults to 16):
            LoRA scaling numerator (scale = alpha / rank).
        lora_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the LoRA branch input.
        lora_target_modules (`list[str]`, *optional*):
            Backbone module names that get LoRA adapters. Defaults to the registry's attention projections of the
            backbone type (query, key, value and output projections).
        freeze_backbone (`bool`, *optional*, defaults to `False`):
            Without LoRA: freeze the backbone and train the heads only (linear probing).
        pspi_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the PSPI regression loss (MSE on PSPI / `pspi_max`).
        au_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the AU regression loss (MSE on intensity / `au_max_intensity`).
        pain_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the threshold loss (binary cross-entropy, mean over thresholds).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal used for head weights and AU queries.
    """

    model_type = "vitpain"
    # Declared so `attn_implementation` propagates to the backbone config.
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: dict | PretrainedConfig | None = None,
        backbone_type: str | None = None,
        backbone_checkpoint: str | None = None,
        input_modality: str = "rgb",
        use_neutral_reference: bool = False,
        neutral_fusion: str = "cross_attention",
        neutral_attention_heads: int | None = None,
        au_names: list[str] | tuple[str, ...] = DEFAULT_AU_NAMES,
        au_max_intensity: list[float] | None = None,
        pspi_max: float = 16.0,
        pain_thresholds: list[float] | tuple[float, ...] = DEFAULT_PAIN_THRESHOLDS,
        head_hidden_size: int = 512,
        au_head_hidden_size: int = 512,
        head_dropout: float = 0.1,
        use_lora: bool = False,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.1,
        lora_target_modules: list[str] | None = None,
        freeze_backbone: bool = False,
        pspi_loss_weight: float = 1.0,
        au_loss_weight: float = 1.0,
        pain_loss_weight: float = 1.0,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if input_modality not in INPUT_MODALITIES:
            raise ValueError(
                f"input_modality={input_modality!r} is not supported: use one of {sorted(INPUT_MODALITIES)}."
            )
        if neutral_fusion not in NEUTRAL_FUSIONS:
            raise ValueError(f"neutral_fusion={neutral_fusion!r} is not supported: use one of {list(NEUTRAL_FUSIONS)}.")
        self.input_modality = input_modality
        self.use_neutral_reference = _flag("use_neutral_reference", use_neutral_reference)
        self.neutral_fusion = neutral_fusion
        self.backbone_config = _build_backbone_config(
            backbone_config, backbone_type, input_modality, self.backbone_num_channels
        )
        _check_backbone_config(self.backbone_config)
        self.backbone_checkpoint = backbone_checkpoint
        self.neutral_attention_heads = _count(
            "neutral_attention_heads",
            self.backbone_config.num_attention_heads if neutral_attention_heads is None else neutral_attention_heads,
        )
        if self.backbone_config.hidden_size % self.neutral_attention_heads:
            raise ValueError(
                f"neutral_attention_heads={self.neutral_attention_heads} must divide the backbone hidden size "
                f"({self.backbone_config.hidden_size})."
            )

        self.au_names = [str(name) for name in au_names]
        if not self.au_names or len(set(self.au_names)) != len(self.au_names):
            raise ValueError(f"au_names must be non-empty and unique, got {self.au_names}.")
        if au_max_intensity is None:
            au_max_intensity = [DEFAULT_AU_MAX_INTENSITY.get(name, AU_INTENSITY_MAX) for name in self.au_names]
        self.au_max_intensity = _numbers("au_max_intensity", au_max_intensity)
        if len(self.au_max_intensity) != len(self.au_names) or not all(v > 0 for v in self.au_max_intensity):
            raise ValueError(
                f"au_max_intensity needs one positive finite bound per AU ({len(self.au_names)}), got "
                f"{au_max_intensity}."
            )
        self.pspi_max = _number("pspi_max", pspi_max, minimum=0.0, inclusive=False)
        self.pain_thresholds = _numbers("pain_thresholds", pain_thresholds)
        if not self.pain_thresholds or any(not 0 < t <= self.pspi_max for t in self.pain_thresholds):
            raise ValueError(
                f"pain_thresholds must be non-empty and within (0, pspi_max={self.pspi_max}], "
                f"got {self.pain_thresholds}."
            )

        self.head_hidden_size = _count("head_hidden_size", head_hidden_size)
        self.au_head_hidden_size = _count("au_head_hidden_size", au_head_hidden_size)
        self.head_dropout = _probability("head_dropout", head_dropout)
        self.use_lora = _flag("use_lora", use_lora)
        self.lora_rank = _count("lora_rank", lora_rank)
        self.lora_alpha = _number("lora_alpha", lora_alpha, minimum=0.0, inclusive=False)
        self.lora_dropout = _probability("lora_dropout", lora_dropout)
        if lora_target_modules is not None and (
            isinstance(lora_target_modules, str) or not all(isinstance(m, str) for m in lora_target_modules)
        ):
            raise ValueError(f"lora_target_modules must be a list of module names, got {lora_target_modules!r}.")
        self.lora_target_modules = list(lora_target_modules) if lora_target_modules is not None else None
        self.freeze_backbone = _flag("freeze_backbone", freeze_backbone)
        self.pspi_loss_weight = _number("pspi_loss_weight", pspi_loss_weight, minimum=0.0)
        self.au_loss_weight = _number("au_loss_weight", au_loss_weight, minimum=0.0)
        self.pain_loss_weight = _number("pain_loss_weight", pain_loss_weight, minimum=0.0)
        self.initializer_range = _number("initializer_range", initializer_range, minimum=0.0, inclusive=False)
        if PIPELINE_TASK in (kwargs.get("custom_pipelines") or {}) and _task_registered_here():
            # This process registered the task (the package is imported): its pipeline serves, never a folder's copy
            # of the code, and `pipeline()` needs no trust_remote_code. Without the package the entry stays.
            kwargs["custom_pipelines"] = {k: v for k, v in kwargs["custom_pipelines"].items() if k != PIPELINE_TASK}
            if not kwargs["custom_pipelines"]:
                del kwargs["custom_pipelines"]
        super().__init__(**kwargs)

    @property
    def backbone_type(self) -> str:
        """Registry key of the backbone (its config's `model_type`, e.g. `"vit"` or `"dinov2"`)."""
        return self.backbone_config.model_type

    @property
    def num_channels(self) -> int:
        """Channels of `pixel_values`: 3 for RGB, 1 for heatmaps."""
        return INPUT_MODALITIES[self.input_modality]

    @property
    def fuses_difference(self) -> bool:
        """Whether the backbone sees the pain image stacked with its difference from the neutral image."""
        return self.use_neutral_reference and self.neutral_fusion == "difference"

    @property
    def backbone_num_channels(self) -> int:
        """Channels the backbone's patch embedding sees: `num_channels`, doubled by the difference fusion."""
        return self.num_channels * (2 if self.fuses_difference else 1)

    @property
    def image_size(self) -> int:
        """Side of the square input image in pixels (the backbone's)."""
        size = self.backbone_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)


def _build_backbone_config(
    backbone_config: dict | PretrainedConfig | None, backbone_type: str | None, input_modality: str, num_channels: int
) -> PretrainedConfig:
    """Turn a dict / config / None into the backbone's config object, with the channel count the backbone sees."""
    if backbone_config is None:
        backbone_config = dict(DEFAULT_BACKBONE_CONFIG)
        if backbone_type is not None:
            backbone_config = {"model_type": backbone_type}
    if isinstance(backbone_config, PretrainedConfig):
        if backbone_type is not None and backbone_type != backbone_config.model_type:
            raise ValueError(
                f"backbone_type={backbone_type!r} contradicts backbone_config.model_type="
                f"{backbone_config.model_type!r}: pass one of them."
            )
        config = backbone_config
    elif isinstance(backbone_config, dict):
        values = dict(backbone_config)
        model_type = values.pop("model_type", None) or backbone_type or DEFAULT_BACKBONE_CONFIG["model_type"]
        if model_type not in CONFIG_MAPPING:
            raise ValueError(f"Unknown backbone model_type {model_type!r}: use 'vit' or 'dinov2'.")
        values.pop("transformers_version", None)
        values.setdefault("num_channels", num_channels)
        config = CONFIG_MAPPING[model_type](**values)
    else:
        raise TypeError(
            f"backbone_config must be a dict, a transformers config or None, got {type(backbone_config).__name__}."
        )
    if config.num_channels != num_channels:
        raise ValueError(
            f"input_modality={input_modality!r} (with its neutral fusion) needs a backbone with num_channels="
            f"{num_channels}, but the backbone config has num_channels={config.num_channels}. Set "
            f"backbone_config['num_channels'] (or use ViTPainModel.from_backbone, which adapts a pretrained RGB patch "
            f"embedding to heatmaps and to the difference fusion)."
        )
    return config


def _task_registered_here() -> bool:
    """Whether `pipeline()` knows the pain-estimation task without a folder's code (the package registered it)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    return PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()


def _flag(name: str, value) -> bool:
    """A switch: a real bool (a saved "false" must not read as on)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return value


def _count(name: str, value) -> int:
    """A size or count: a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return int(value)


def _number(name: str, value, minimum: float, inclusive: bool = True) -> float:
    """A finite real number at least (or above) `minimum`."""
    number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not math.isfinite(number) or number < minimum or (not inclusive and number == minimum):
        bound = f"at least {minimum:g}" if inclusive else f"above {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return number


def _numbers(name: str, values) -> list[float]:
    """A list of finite real numbers."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(f"{name} must be a list of finite numbers, got {values!r}.")
    return [float(v) for v in values]


def _probability(name: str, value) -> float:
    """A dropout probability in [0, 1)."""
    probability = _number(name, value, minimum=0.0)
    if probability >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
    return probability


# Backbone fields ViTPain checks (when the backbone config has them): sizes, then probabilities, then positive reals.
_BACKBONE_COUNTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "num_channels")
_BACKBONE_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate")
_BACKBONE_POSITIVE = ("layer_norm_eps", "initializer_range", "mlp_ratio", "layerscale_value")


def _check_backbone_config(config: PretrainedConfig) -> None:
    """The backbone sizes are whole and positive, heads divide the width, the patch fits the image, and
    probabilities and scales are finite and in range: one line naming the field otherwise."""
    for name in _BACKBONE_COUNTS:
        if hasattr(config, name):
            _count(f"backbone_config.{name}", getattr(config, name))
    for name in _BACKBONE_PROBABILITIES:
        if getattr(config, name, None) is not None:
            _probability(f"backbone_config.{name}", getattr(config, name))
    for name in _BACKBONE_POSITIVE:
        if getattr(config, name, None) is not None:
            _number(f"backbone_config.{name}", getattr(config, name), minimum=0.0, inclusive=False)
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"backbone_config.num_attention_heads must divide backbone_config.hidden_size={config.hidden_size}, got "
            f"{config.num_attention_heads}."
        )
    sizes = {}
    for name in ("image_size", "patch_size"):
        value = getattr(config, name, None)
        if value is not None:
            pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
            if len(pair) != 2:
                raise ValueError(f"backbone_config.{name} must be one size or (height, width), got {value!r}.")
            sizes[name] = tuple(_count(f"backbone_config.{name}", v) for v in pair)
    if len(sizes) == 2 and any(image < patch for image, patch in zip(sizes["image_size"], sizes["patch_size"])):
        raise ValueError(
            f"backbone_config.patch_size must fit in backbone_config.image_size={config.image_size}, got "
            f"{config.patch_size}."
        )


__all__ = [
    "ViTPainConfig",
    "PIPELINE_TASK",
    "DEFAULT_AU_NAMES",
    "DEFAULT_PAIN_THRESHOLDS",
    "INPUT_MODALITIES",
    "NEUTRAL_FUSIONS",
]
