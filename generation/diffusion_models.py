"""Options and loading of the diffusion models behind `--texture diffusion` and `--background inpaint`.

Models load with `from_pretrained(id)`, where `id` is a Hugging Face Hub id (downloaded once into the Hub cache) or a
local folder written by `save_pretrained`; tests save tiny random-weight pipelines to a folder and go through the
same calls. A model that cannot be loaded is one `ConfigError` naming it and saying how to get it: the diffusion
stages never fall back to procedural textures or backgrounds.

Nothing here imports torch or diffusers until a model is actually loaded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError
from .background.prompts import SCENE_NEGATIVE_PROMPT, SCENES, TEXTURE_NEGATIVE_PROMPT, TEXTURE_PROMPT_SUFFIX


@dataclass(frozen=True)
class ModelPreset:
    base_model: str  # text-to-image pipeline
    controlnet_model: str  # depth ControlNet for base_model
    inpaint_model: str  # inpainting pipeline for backgrounds
    resolution: int  # native image size in pixels
    normal_controlnet_model: str | None = None  # a normal-map ControlNet, used only when asked for


PRESETS: dict[str, ModelPreset] = {
    "sd15": ModelPreset(
        base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        controlnet_model="lllyasviel/control_v11f1p_sd15_depth",
        inpaint_model="stable-diffusion-v1-5/stable-diffusion-inpainting",
        resolution=512,
        normal_controlnet_model="lllyasviel/control_v11p_sd15_normalbae",
    ),
    "sdxl": ModelPreset(
        base_model="stabilityai/stable-diffusion-xl-base-1.0",
        controlnet_model="diffusers/controlnet-depth-sdxl-1.0",
        inpaint_model="diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
        resolution=1024,
    ),
}
DTYPES = ("auto", "float32", "float16", "bfloat16")
TEXT_TO_IMAGE_CLASSES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
INPAINT_CLASSES = ("StableDiffusionInpaintPipeline", "StableDiffusionXLInpaintPipeline", *TEXT_TO_IMAGE_CLASSES)


def _check_common(name: str, preset: str, steps: int, guidance_scale: float, resolution: int, dtype: str) -> list[str]:
    problems = []
    if preset not in PRESETS:
        problems.append(f"{name} preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if steps < 1:
        problems.append(f"{name} steps must be at least 1, got {steps}")
    if not 0 <= guidance_scale < float("inf"):  # also refuses NaN, which compares false with everything
        problems.append(f"{name} guidance scale must be a finite number >= 0, got {guidance_scale}")
    if not (32 <= resolution <= 2048 and resolution % 8 == 0):
        problems.append(f"{name} resolution must be a multiple of 8 within 32-2048 pixels, got {resolution}")
    if dtype not in DTYPES:
        problems.append(f"{name} dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return problems


class _Options:
    """from_dict / to_dict shared by the option records (tuples become JSON lists and back)."""

    @classmethod
    def from_dict(cls, data: dict | None):
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.label} option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:  # e.g. a string where a number belongs
            raise ConfigError(f"invalid {cls.label} options {data}: {error}") from None

    def to_dict(self) -> dict:
        return _json_ready(asdict(self))


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


@dataclass(frozen=True)
class DiffusionTextureOptions(_Options):
    """Everything that shapes a diffusion texture (recorded in generation_config.json, model ids resolved).

    `views` are (yaw, pitch) degrees of the cameras whose generated images are baked into the UV atlas: one
    frontal image by default; extra views fill the sides but are generated independently, so they may disagree
    where they overlap (the blend weights favour whichever view sees a texel head-on).
    """

    label = "diffusion texture"
    preset: str = "sd15"
    base_model: str | None = None
    controlnet_model: str | None = None
    normal_controlnet_model: str | None = None  # adds a normal-map ControlNet next to the depth one
    steps: int = 30
    guidance_scale: float = 7.5
    controlnet_scale: float = 1.0
    resolution: int | None = None
    views: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    prompt_suffix: str = TEXTURE_PROMPT_SUFFIX
    negative_prompt: str = TEXTURE_NEGATIVE_PROMPT
    dtype: str = "auto"

    def __post_init__(self):
        preset = PRESETS.get(self.preset)
        if preset is not None:  # fill the model ids and size from the preset, so the record names them
            for name in ("base_model", "controlnet_model", "resolution"):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, getattr(preset, name))
        views = tuple((float(v[0]), float(v[1])) for v in self.views)
        object.__setattr__(self, "views", views)
        problems = _check_common(
            "diffusion texture", self.preset, self.steps, self.guidance_scale, 512 if self.resolution is None else self.resolution, self.dtype
        )
        if not views:
            problems.append("diffusion texture views must list at least one (yaw, pitch)")
        if any(abs(yaw) > 90 or abs(pitch) > 60 for yaw, pitch in views):
            problems.append(f"diffusion texture views must have |yaw| <= 90 and |pitch| <= 60 degrees, got {views}")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class InpaintOptions(_Options):
    """Everything that shapes an inpainted background (recorded in generation_config.json)."""

    label = "background inpainting"
    preset: str = "sd15"
    model: str | None = None
    steps: int = 30
    guidance_scale: float = 7.5
    resolution: int | None = None
    scenes: tuple[str, ...] = SCENES
    negative_prompt: str = SCENE_NEGATIVE_PROMPT
    dtype: str = "auto"

    def __post_init__(self):
        preset = PRESETS.get(self.preset)
        if preset is not None:
            if self.model is None:
                object.__setattr__(self, "model", preset.inpaint_model)
            if self.resolution is None:
                object.__setattr__(self, "resolution", preset.resolution)
        object.__setattr__(self, "scenes", tuple(str(s) for s in self.scenes))
        problems = _check_common(
            "background inpainting", self.preset, self.steps, self.guidance_scale, 512 if self.resolution is None else self.resolution, self.dtype
        )
        if not self.scenes:
            problems.append("background inpainting needs at least one scene prompt")
        if problems:
            raise ConfigError("; ".join(problems))


# ----------------------------------------------------------------------------------------------- device and dtype
def resolve_device(device: str | None = None) -> str:
    """`device`, or: this process's GPU under `accelerate launch` / torchrun (LOCAL_RANK), else cuda, else cpu."""
    import torch

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        return "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA GPU on this machine; use --device cpu")
    return str(device)


def resolve_dtype(name: str, device: str):
    """'auto' is bfloat16 on CUDA (float16 overflows in the SDXL VAE) and float32 elsewhere."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


# ----------------------------------------------------------------------------------------------- loading
def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _looks_local(model_id: str) -> bool:
    """A folder path rather than a Hub id ('owner/name')."""
    return Path(model_id).expanduser().exists() or model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1


def unavailable_message(model_id: str, role: str, error: BaseException | None = None) -> str:
    """The one error for a model that cannot be loaded: which model, why, and how to get it."""
    reason = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    if _looks_local(model_id):
        where = Path(model_id).expanduser()
        if not where.exists():
            return f"the {role} folder {model_id} does not exist: pass a Hub id or a folder written by save_pretrained"
        return (
            f"{model_id} is not a saved diffusers {role} ({reason}): pass a folder written by save_pretrained "
            "(it holds model_index.json or config.json) or a Hub id"
        )
    get = f"download it once with `hf download {model_id}` (or `huggingface-cli download {model_id}`)"
    if _offline():
        return (
            f"the {role} {model_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading "
            f"it: {get} on a machine with internet access, unset HF_HUB_OFFLINE to let it download, or pass a local "
            "folder written by save_pretrained (no procedural fallback is used)"
        )
    return (
        f"cannot load the {role} {model_id!r} ({reason}): check the id and the network, {get}, "
        "or pass a local folder written by save_pretrained (no procedural fallback is used)"
    )


def from_pretrained(load: Callable[..., Any], model_id: str, role: str, **kwargs):
    """`load(model_id, **kwargs)` with one clear ConfigError when the weights cannot be had."""
    if _looks_local(model_id) and not Path(model_id).expanduser().exists():
        raise ConfigError(unavailable_message(model_id, role))
    try:
        return load(str(Path(model_id).expanduser()) if _looks_local(model_id) else model_id, **kwargs)
    except (OSError, ValueError) as error:  # huggingface_hub's not-found / offline errors are OSErrors
        raise ConfigError(unavailable_message(model_id, role, error)) from None


def _pipeline_class(model_id: str, role: str, allowed: tuple[str, ...]) -> tuple[str, dict]:
    """The pipeline class named in model_index.json, and the keyword arguments that skip its safety checker."""
    from diffusers import DiffusionPipeline

    config = from_pretrained(DiffusionPipeline.load_config, model_id, role)
    name = config.get("_class_name", "?")
    if name not in allowed:
        raise ConfigError(f"the {role} {model_id!r} is a {name}; it must be one of: {', '.join(allowed)}")
    # The prompts are fixed portrait / scene prompts; a (false) NSFW flag would return a black image that would be
    # baked silently into a texture, so the SD 1.x safety checker is not loaded.
    extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in config else {}
    return name, extra


def check_models(texture: DiffusionTextureOptions | None = None, background: InpaintOptions | None = None) -> None:
    """Fail early, before any output is written or worker started, when a model's config cannot be found (reads
    only the small config files, from the cache or a folder)."""
    from diffusers import ControlNetModel

    if texture is not None:
        _pipeline_class(texture.base_model, "base model", TEXT_TO_IMAGE_CLASSES)
        from_pretrained(ControlNetModel.load_config, texture.controlnet_model, "depth ControlNet")
        if texture.normal_controlnet_model:
            from_pretrained(ControlNetModel.load_config, texture.normal_controlnet_model, "normal ControlNet")
    if background is not None:
        _pipeline_class(background.model, "inpainting model", INPAINT_CLASSES)


def _ready(pipe, device: str):
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_texture_pipeline(options: DiffusionTextureOptions, device: str):
    """Depth-ControlNet text-to-image pipeline (SD 1.x/2.x or SDXL, from the base model's own class) on `device`."""
    from diffusers import AutoPipelineForText2Image, ControlNetModel

    dtype = resolve_dtype(options.dtype, device)
    _, extra = _pipeline_class(options.base_model, "base model", TEXT_TO_IMAGE_CLASSES)
    controlnets = [
        from_pretrained(ControlNetModel.from_pretrained, options.controlnet_model, "depth ControlNet", dtype=dtype)
    ]
    if options.normal_controlnet_model:
        controlnets.append(
            from_pretrained(
                ControlNetModel.from_pretrained, options.normal_controlnet_model, "normal ControlNet", dtype=dtype
            )
        )
    pipe = from_pretrained(
        AutoPipelineForText2Image.from_pretrained, options.base_model, "base model",
        controlnet=controlnets if len(controlnets) > 1 else controlnets[0], dtype=dtype, **extra,
    )
    width = pipe.unet.config.cross_attention_dim
    for model_id, net in zip((options.controlnet_model, options.normal_controlnet_model), controlnets):
        if net.config.cross_attention_dim != width:  # e.g. an SD 1.5 ControlNet with an SDXL base
            raise ConfigError(
                f"the ControlNet {model_id!r} was made for another base model than {options.base_model!r} (text "
                f"width {net.config.cross_attention_dim} vs {width}): use a matching pair, e.g. a --diffusion-preset"
            )
    return _ready(pipe, device)


def load_inpaint_pipeline(options: InpaintOptions, device: str):
    """Inpainting pipeline (SD 1.x/2.x or SDXL; an inpainting checkpoint works best) on `device`."""
    from diffusers import AutoPipelineForInpainting

    _, extra = _pipeline_class(options.model, "inpainting model", INPAINT_CLASSES)
    pipe = from_pretrained(
        AutoPipelineForInpainting.from_pretrained, options.model, "inpainting model",
        dtype=resolve_dtype(options.dtype, device), **extra,
    )
    return _ready(pipe, device)
