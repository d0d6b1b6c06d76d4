"""Image processor for ViTPain: face images (RGB) or pain-region heatmaps (millimetres) -> `pixel_values`.

This file travels alone as remote code: it imports numpy, PIL, torch and transformers only.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
# The normalisation each backbone family was pre-trained with (ViT: [-1, 1]; DINOv2: ImageNet statistics).
BACKBONE_NORMALIZATION = {
    "vit": (IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD),
    "dinov2": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
}
DEFAULT_HEATMAP_SCALE_MM = 10.0
# The 3DPain dataset stores heatmaps as 16-bit PNGs of micrometres (its column contract; pinned by a test to
# `generation.columns.HEATMAP_UNITS_PER_MM`, which this file may not import: it travels alone).
HEATMAP_PNG_UNITS_PER_MM = 1000.0
_INTEGER_HEATMAP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_MODALITY_CHANNELS = {"rgb": 3, "heatmap": 1}
_ALPHA_BACKGROUND = 1.0  # transparent pixels become white, as transformers' convert_to_rgb does
_ACCEPTED = "PIL.Image.Image, numpy.ndarray, torch.Tensor or a path to an image file"


class ViTPainImageProcessor(BaseImageProcessor):
    r"""
    Turns face images or pain-region heatmaps into ViTPain's `pixel_values` (and `neutral_pixel_values`).

    RGB (`input_modality="rgb"`): any PIL mode that has colour or gray levels (L, LA, P, RGB, RGBA, CMYK, ...),
    uint8 arrays (0-255) or float arrays in [0, 1], channels first or last. Gray is repeated to 3 channels; alpha is
    composited over white. The image is resized (bilinear, antialiased) to `size`, scaled to [0, 1] and normalised
    with `image_mean` / `image_std`.

    Heatmap (`input_modality="heatmap"`): one-channel float maps in millimetres of vertex displacement: PIL mode "F"
    or 2-D float arrays / tensors (a singleton channel axis is allowed), or the dataset's own 16-bit PNGs (PIL mode
    "I;16", micrometres: pixel / 1000 = mm). After resizing, values are divided by the fixed `heatmap_scale_mm`
    (default 10 mm -> 1.0). There is no per-sample normalisation: a stronger expression gives larger values.

    This processor is the one owner of resizing and normalisation: training builds its transform from the processor
    saved with the model (`size`, `image_mean`, `image_std`, and `preprocess(..., do_normalize=False)` before
    augmentation), so what is evaluated is what `pipeline("pain-estimation")` serves.

    Args:
        input_modality (`str`, *optional*, defaults to `"rgb"`): `"rgb"` or `"heatmap"`.
        size (`dict`, *optional*, defaults to `{"height": 224, "width": 224}`): output size in pixels.
        do_normalize (`bool`, *optional*, defaults to `True`): normalise RGB with `image_mean` / `image_std`.
        image_mean, image_std (`list[float]`, *optional*): per-channel statistics for RGB (defaults 0.5, 0.5).
        heatmap_scale_mm (`float`, *optional*, defaults to 10.0): millimetres that map to 1.0 for heatmaps.
        do_convert_rgb (`bool`, *optional*, defaults to `True`): turn gray, palette and RGBA images into RGB (gray
            repeated, alpha laid over white); `False` takes RGB images only. Heatmaps ignore it.

    Saved settings are checked on load: a statistic that is not finite, a zero `image_std` or a switch that is not
    true / false is refused with one line naming it (they would turn every prediction into NaN).
    """

    model_input_names = ["pixel_values", "neutral_pixel_values"]

    def __init__(
        self,
        input_modality: str = "rgb",
        size: dict[str, int] | int | None = None,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        heatmap_scale_mm: float = DEFAULT_HEATMAP_SCALE_MM,
        do_convert_rgb: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if input_modality not in _MODALITY_CHANNELS:
            raise ValueError(f"input_modality={input_modality!r}: use 'rgb' or 'heatmap'.")
        self.input_modality = input_modality
        self.size = _checked_size({"height": 224, "width": 224} if size is None else size)
        self.do_normalize = _checked_flag("do_normalize", do_normalize)
        self.do_convert_rgb = _checked_flag("do_convert_rgb", do_convert_rgb)
        self.image_mean = _checked_statistic("image_mean", IMAGENET_STANDARD_MEAN if image_mean is None else image_mean)
        self.image_std = _checked_statistic("image_std", IMAGENET_STANDARD_STD if image_std is None else image_std)
        self.heatmap_scale_mm = _checked_scale(heatmap_scale_mm)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> ViTPainImageProcessor:
        """The processor that matches a `ViTPainConfig`: its modality, image size and backbone normalisation."""
        size = config.backbone_config.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        mean, std = BACKBONE_NORMALIZATION.get(config.backbone_config.model_type, BACKBONE_NORMALIZATION["vit"])
        settings = {
            "input_modality": config.input_modality,
            "size": {"height": height, "width": width},
            "image_mean": mean,
            "image_std": std,
        }
        settings.update(kwargs)
        return cls(**settings)

    def __call__(self, images, neutral_images=None, **kwargs) -> BatchFeature:
        return self.preprocess(images, neutral_images=neutral_images, **kwargs)

    def preprocess(
        self,
        images,
        neutral_images=None,
        return_tensors: str | None = "pt",
        *,
        do_resize: bool | None = None,
        size: dict[str, int] | int | None = None,
        do_normalize: bool | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        heatmap_scale_mm: float | None = None,
        do_convert_rgb: bool | None = None,
        input_data_format: str | None = None,
        data_format: str | None = "channels_first",
    ) -> BatchFeature:
        """
        Args:
            images: one image or a list (or a 4-D batch array / tensor) of images.
            neutral_images: optional neutral image(s) of the same faces, one per image, same structure.
            return_tensors: `"pt"` (default) for torch tensors, `"np"` for numpy arrays.
            do_resize, size, do_normalize, image_mean, image_std, heatmap_scale_mm, do_convert_rgb: per-call
                overrides of the processor's settings (as transformers image processors take them).
            input_data_format: `"channels_first"` or `"channels_last"` for array inputs (inferred when omitted).
            data_format: only `"channels_first"` (the model's layout).

        Returns:
            `BatchFeature` with `pixel_values` of shape `(batch, channels, height, width)` (channels 3 for RGB, 1 for
            heatmaps) and `neutral_pixel_values` of the same shape when neutral images were given.
        """
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors={return_tensors!r}: use 'pt' or 'np'.")
        if str(getattr(data_format, "value", data_format) or "channels_first") != "channels_first":
            raise ValueError(f"data_format={data_format!r}: ViTPain takes channels-first pixel values.")
        settings = self._settings(
            do_resize, size, do_normalize, image_mean, image_std, heatmap_scale_mm, do_convert_rgb
        )
        layout = getattr(input_data_format, "value", input_data_format)
        if layout not in (None, "channels_first", "channels_last"):
            raise ValueError(f"input_data_format={input_data_format!r}: use 'channels_first' or 'channels_last'.")
        image_list = _as_list(images, "images")
        data = {"pixel_values": self._process_batch(image_list, "images", settings, layout)}
        if neutral_images is not None:
            neutral_list = _as_list(neutral_images, "neutral_images")
            if len(neutral_list) != len(image_list):
                raise ValueError(
                    f"Got {len(image_list)} image(s) but {len(neutral_list)} neutral image(s): pass exactly one "
                    "neutral image of the same face per image."
                )
            data["neutral_pixel_values"] = self._process_batch(neutral_list, "neutral_images", settings, layout)
        if return_tensors == "np":
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data=data)

    def _settings(self, do_resize, size, do_normalize, image_mean, image_std, heatmap_scale_mm, do_convert_rgb) -> dict:
        """This processor's settings with the per-call overrides applied (validated like the constructor's)."""
        return {
            "do_resize": True if do_resize is None else _checked_flag("do_resize", do_resize),
            "size": self.size if size is None else _checked_size(size),
            "do_normalize": self.do_normalize if do_normalize is None else _checked_flag("do_normalize", do_normalize),
            "image_mean": self.image_mean if image_mean is None else _checked_statistic("image_mean", image_mean),
            "image_std": self.image_std if image_std is None else _checked_statistic("image_std", image_std),
            "heatmap_scale_mm": self.heatmap_scale_mm if heatmap_scale_mm is None else _checked_scale(heatmap_scale_mm),
            "do_convert_rgb": (
                self.do_convert_rgb if do_convert_rgb is None else _checked_flag("do_convert_rgb", do_convert_rgb)
            ),
        }

    def _process_batch(self, images: list, role: str, settings: dict, layout: str | None) -> torch.Tensor:
        return torch.stack(
            [self._process_one(image, f"{role}[{index}]", settings, layout) for index, image in enumerate(images)]
        )

    def _process_one(self, image, where: str, settings: dict, layout: str | None) -> torch.Tensor:
        if isinstance(image, (str, os.PathLike)):
            image = _open_image(image, where)
        if self.input_modality == "heatmap":
            array = _heatmap_to_array(image, where, layout) / settings["heatmap_scale_mm"]
        else:
            array = _rgb_to_array(image, where, layout, settings["do_convert_rgb"])
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if settings["do_resize"]:
            tensor = _resize(tensor, settings["size"]["height"], settings["size"]["width"])
        if self.input_modality == "rgb" and settings["do_normalize"]:
            mean = torch.tensor(settings["image_mean"], dtype=tensor.dtype).view(-1, 1, 1)
            std = torch.tensor(settings["image_std"], dtype=tensor.dtype).view(-1, 1, 1)
            tensor = (tensor - mean) / std
        return tensor


def _as_list(images, name: str) -> list:
    """A single image, a list / tuple of images or a 4-D batch -> a non-empty list of images."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} is empty: pass at least one image.")
        return list(images)
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        return list(images)
    return [images]


def _open_image(path, where: str) -> PIL.Image.Image:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: no image file at {os.fspath(path)!r}.")
    with PIL.Image.open(path) as image:
        image.load()
        return image


def _to_numpy(image, where: str) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.is_floating_point() and image.dtype not in (torch.float32, torch.float64):
            image = image.float()  # numpy has no bfloat16; float32 holds every bfloat16 / float16 value exactly
        return image.numpy()
    if isinstance(image, np.ndarray):
        return image
    raise TypeError(f"{where}: expected a {_ACCEPTED}, got {type(image).__name__}.")


def _channels_first(array: np.ndarray, where: str, layout: str | None = None) -> np.ndarray:
    """(H, W) or (H, W, C) or (C, H, W) with C in {1, 3, 4} -> (C, H, W); `layout` settles ambiguous shapes."""
    if array.ndim == 2:
        return array[None]
    if array.ndim == 3 and layout == "channels_first":
        return array
    if array.ndim == 3 and layout == "channels_last":
        return np.moveaxis(array, -1, 0)
    if array.ndim == 3:
        if array.shape[0] in (1, 3, 4):
            return array
        if array.shape[-1] in (1, 3, 4):
            return np.moveaxis(array, -1, 0)
    raise ValueError(
        f"{where}: array of shape {array.shape} is not an image: use (H, W), (H, W, C) or (C, H, W) with C = 1, 3 or 4."
    )


def _rgb_to_array(image, where: str, layout: str | None = None, convert_rgb: bool = True) -> np.ndarray:
    """Any colour / gray image -> float32 (3, H, W) in [0, 1]; with `convert_rgb=False` only 3-channel images."""
    if not convert_rgb and _channels(image, where, layout) != 3:
        raise ValueError(
            f"{where}: the image has {_channels(image, where, layout)} channel(s) and do_convert_rgb=False: pass RGB "
            "images, or leave do_convert_rgb on (gray is repeated, alpha is laid over white)."
        )
    if isinstance(image, PIL.Image.Image):
        if image.mode in ("F", "I", "I;16", "I;16B", "I;16L", "I;16N"):
            raise ValueError(
                f"{where}: PIL mode {image.mode!r} holds single-channel measurements, not a face image. Heatmaps "
                "need a model and processor with input_modality='heatmap'; photos must be 8-bit (L, RGB, RGBA, ...)."
            )
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
        array = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
        array = np.moveaxis(array, -1, 0)
    else:
        array = _channels_first(_to_numpy(image, where), where, layout)
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        elif np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
            if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
                raise ValueError(f"{where}: float images must hold finite values in [0, 1] (or pass uint8 0-255).")
        else:
            raise TypeError(f"{where}: images must be uint8 (0-255) or float in [0, 1], got dtype {array.dtype}.")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{where}: the image is empty ({array.shape[1]}x{array.shape[2]} pixels).")
    if array.shape[0] == 4:
        alpha = array[3:4]
        array = array[:3] * alpha + _ALPHA_BACKGROUND * (1.0 - alpha)
    elif array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return array


def _channels(image, where: str, layout: str | None) -> int:
    if isinstance(image, PIL.Image.Image):
        return len(image.getbands())
    return _channels_first(_to_numpy(image, where), where, layout).shape[0]


def _heatmap_to_array(heatmap, where: str, layout: str | None = None) -> np.ndarray:
    """A heatmap in millimetres (PIL "F", 2-D float array / tensor, optional singleton channel) or the dataset's
    16-bit PNG in micrometres (PIL "I;16") -> float32 (1, H, W) in millimetres."""
    if isinstance(heatmap, PIL.Image.Image):
        if heatmap.mode in _INTEGER_HEATMAP_MODES:
            array = np.asarray(heatmap, dtype=np.float32)[None] / np.float32(HEATMAP_PNG_UNITS_PER_MM)
        elif heatmap.mode == "F":
            array = np.asarray(heatmap, dtype=np.float32)[None]
        else:
            raise ValueError(
                f"{where}: heatmaps must be float millimetres (PIL mode 'F' or a float array) or the dataset's "
                f"16-bit PNG of micrometres (mode 'I;16'), got PIL mode {heatmap.mode!r}. A colourised heatmap is "
                "for viewing only."
            )
    else:
        array = _to_numpy(heatmap, where)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"{where}: heatmaps must be float arrays in millimetres, got dtype {array.dtype}; convert integer "
                "maps with their fixed scale first."
            )
        array = _channels_first(array, where, layout)
        if array.shape[0] != 1:
            raise ValueError(f"{where}: heatmaps have one channel, got an array of shape {tuple(heatmap.shape)}.")
        array = array.astype(np.float32)
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{where}: the heatmap is empty ({array.shape[1]}x{array.shape[2]} pixels).")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: the heatmap holds NaN or infinite values.")
    return array


def _checked_flag(name: str, value) -> bool:
    """A saved or passed switch: a real bool (the string "false" must not read as on)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return bool(value)


def _checked_size(size) -> dict[str, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = {"height": size, "width": size}
    if (
        not isinstance(size, dict)
        or set(size) != {"height", "width"}
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in size.values())
    ):
        raise ValueError(f"size must be {{'height': H, 'width': W}} with positive whole H and W, got {size!r}.")
    return {"height": int(size["height"]), "width": int(size["width"])}


def _checked_statistic(name: str, values) -> list[float]:
    """`image_mean` / `image_std`: one finite number per RGB channel; a standard deviation is positive."""
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) != 3 or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{name} must be 3 finite numbers (one per RGB channel), got {values!r}.")
    if name == "image_std" and min(numbers) <= 0:
        raise ValueError(f"image_std must be positive (pixels are divided by it), got {numbers}.")
    return numbers


def _checked_scale(heatmap_scale_mm) -> float:
    try:
        scale = float(heatmap_scale_mm)
    except (TypeError, ValueError):
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"heatmap_scale_mm must be a positive finite number of millimetres, got {heatmap_scale_mm!r}.")
    return scale


def _resize(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) -> (C, height, width), bilinear; antialiased when shrinking so small details are averaged, not lost."""
    if tuple(tensor.shape[1:]) == (height, width):
        return tensor
    shrinking = tensor.shape[1] > height or tensor.shape[2] > width
    return F.interpolate(tensor[None], size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)[
        0
    ]


__all__ = ["ViTPainImageProcessor"]
