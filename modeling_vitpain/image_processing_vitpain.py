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
FACE_CROPS = ("none", "aligned")
# The aligned face crop (face_crop="aligned"): a similarity transform puts four anchors of a face's 68 landmarks
# (iBUG order; UNBC's 66 AAM points agree on 0-59), the two eye centres and the two mouth corners, where they sit on
# average in the generator's frontal neutral renders, as fractions of the side (x right, y down, pixel centres at .5).
# The data side's `dataset_builder.alignment` (UNBC align=True, the demo's align_photo) holds the same values, by
# value (this file travels alone); tests/test_evaluate_parity.py pins them equal.
ALIGNED_TEMPLATE = ((0.3758, 0.4445), (0.6235, 0.4435), (0.4045, 0.7130), (0.5980, 0.7124))
RIGHT_EYE_POINTS = tuple(range(36, 42))  # the subject's right eye, on the image's left
LEFT_EYE_POINTS = tuple(range(42, 48))
MOUTH_CORNER_POINTS = (48, 54)
ALIGNED_FILL = 128 / 255  # outside the photo: the renders' mid-grey background (heatmaps: 0 mm)


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
        face_crop (`str`, *optional*, defaults to `"none"`): `"none"` reads the whole image; `"aligned"` cuts the
            face out of it first, from its 68 (or UNBC's 66) landmarks: a similarity transform (no shear) puts the
            eye centres and mouth corners on `ALIGNED_TEMPLATE` of a square `size` crop, the crop real photos get
            from UNBC's `align=True` and the demo's `align_photo`. `preprocess` then needs `landmarks=` (pixels of
            each image); a neutral image uses `neutral_landmarks=`, or its face's `landmarks` when none are given
            (renders: the same camera and head pose, so image and neutral stay registered pixel for pixel).

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
        face_crop: str = "none",
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
        self.face_crop = _checked_face_crop(face_crop, self.size)

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
        face_crop: str | None = None,
        landmarks=None,
        neutral_landmarks=None,
        input_data_format: str | None = None,
        data_format: str | None = "channels_first",
    ) -> BatchFeature:
        """
        Args:
            images: one image or a list (or a 4-D batch array / tensor) of images.
            neutral_images: optional neutral image(s) of the same faces, one per image, same structure.
            return_tensors: `"pt"` (default) for torch tensors, `"np"` for numpy arrays.
            do_resize, size, do_normalize, image_mean, image_std, heatmap_scale_mm, do_convert_rgb, face_crop:
                per-call overrides of the processor's settings (as transformers image processors take them).
            landmarks: with `face_crop="aligned"`, each image's 68 (or 66) landmarks in its pixels, (N, 2) for one
                image, one per image for a list.
            neutral_landmarks: the same for the neutral images (default: their faces' `landmarks`).
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
        settings["face_crop"] = self.face_crop if face_crop is None else _checked_face_crop(face_crop, settings["size"])
        layout = getattr(input_data_format, "value", input_data_format)
        if layout not in (None, "channels_first", "channels_last"):
            raise ValueError(f"input_data_format={input_data_format!r}: use 'channels_first' or 'channels_last'.")
        image_list = _as_list(images, "images")
        points = _landmark_list(landmarks, images, len(image_list), "landmarks")
        data = {"pixel_values": self._process_batch(image_list, "images", settings, layout, points)}
        if neutral_images is not None:
            neutral_list = _as_list(neutral_images, "neutral_images")
            if len(neutral_list) != len(image_list):
                raise ValueError(
                    f"Got {len(image_list)} image(s) but {len(neutral_list)} neutral image(s): pass exactly one "
                    "neutral image of the same face per image."
                )
            neutral_points = _landmark_list(neutral_landmarks, neutral_images, len(neutral_list), "neutral_landmarks")
            neutral_points = [own if own is not None else face for own, face in zip(neutral_points, points)]
            data["neutral_pixel_values"] = self._process_batch(neutral_list, "neutral_images", settings, layout,
                                                               neutral_points)
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

    def _process_batch(self, images: list, role: str, settings: dict, layout: str | None, landmarks: list
                       ) -> torch.Tensor:
        return torch.stack([self._process_one(image, f"{role}[{index}]", settings, layout, points)
                            for index, (image, points) in enumerate(zip(images, landmarks))])

    def aligned_crop(self, pixels: torch.Tensor, landmarks, fill: float = 0.0, where: str = "image") -> torch.Tensor:
        """The `face_crop="aligned"` crop of `pixels` (C, H, W float) at this processor's size: its landmarks'
        anchors on `ALIGNED_TEMPLATE`, bilinear, `fill` outside the image. Training transforms call it to cut a
        heatmap exactly as the model's images are cut."""
        return _aligned_crop(pixels, landmarks, self.size["height"], fill, where)

    def _process_one(self, image, where: str, settings: dict, layout: str | None, landmarks=None) -> torch.Tensor:
        if isinstance(image, (str, os.PathLike)):
            image = _open_image(image, where)
        if self.input_modality == "heatmap":
            array = _heatmap_to_array(image, where, layout) / settings["heatmap_scale_mm"]
        else:
            array = _rgb_to_array(image, where, layout, settings["do_convert_rgb"])
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if settings["face_crop"] == "aligned":  # the crop is the output size: no resize after it
            if landmarks is None:
                raise ValueError(
                    f"{where}: face_crop='aligned' needs the face's 68 landmarks (pixels of the image): pass "
                    "landmarks= (the pipeline: {'image': ..., 'landmarks': ...}), or use face_crop='none'."
                )
            fill = ALIGNED_FILL if self.input_modality == "rgb" else 0.0
            tensor = _aligned_crop(tensor, landmarks, settings["size"]["height"], fill, where)
        elif settings["do_resize"]:
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


def _checked_face_crop(face_crop, size: dict[str, int]) -> str:
    if face_crop not in FACE_CROPS:
        raise ValueError(f"face_crop must be one of {FACE_CROPS}, got {face_crop!r}.")
    if face_crop == "aligned" and size["height"] != size["width"]:
        raise ValueError(f"face_crop='aligned' makes square crops; size is {size}: use one side.")
    return face_crop


def _landmark_list(landmarks, images, count: int, name: str) -> list:
    """`landmarks` as one (K, 2) float64 array (or None) per image: (K, 2) for a single image, a sequence of them
    (or a (B, K, 2) array) for a list or batch of images."""
    if landmarks is None:
        return [None] * count
    single = not isinstance(images, (list, tuple)) and not (
        isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4)
    items = [landmarks] if single else list(landmarks)
    if len(items) != count:
        raise ValueError(f"Got {count} image(s) but {len(items)} set(s) of {name}: pass one per image.")
    return [None if item is None else _checked_landmarks(item, f"{name}[{i}]") for i, item in enumerate(items)]


def _checked_landmarks(points, where: str) -> np.ndarray:
    try:
        array = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros((0,))
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] not in (66, 68):
        raise ValueError(f"{where}: landmarks must be (68, 2) (iBUG order, as landmarks_2d and dlib give) or (66, 2) "
                         f"(UNBC AAM) pixel coordinates, got shape {array.shape}.")
    if not np.isfinite(array[:60]).all():
        raise ValueError(f"{where}: the landmarks hold NaN or infinite values; the eye and mouth points are needed.")
    return array


def _aligned_crop(pixels: torch.Tensor, landmarks, side: int, fill: float, where: str) -> torch.Tensor:
    """(C, H, W) -> (C, side, side): the similarity transform of the landmarks' anchors onto `ALIGNED_TEMPLATE`,
    bilinear; a face larger than the crop is first shrunk (antialiased) so the warp samples it near 1:1."""
    points = _checked_landmarks(landmarks, where)
    anchors = np.stack([points[list(RIGHT_EYE_POINTS)].mean(0), points[list(LEFT_EYE_POINTS)].mean(0),
                        points[MOUTH_CORNER_POINTS[0]], points[MOUTH_CORNER_POINTS[1]]])
    matrix = similarity_matrix(anchors, np.asarray(ALIGNED_TEMPLATE) * side)  # image pixels -> crop pixels
    height, width = pixels.shape[1:]
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    if scale < 1:
        small = (max(1, round(height * scale)), max(1, round(width * scale)))
        pixels = _resize(pixels, *small)
        matrix = matrix * np.array([[width / small[1], height / small[0], 1.0]])  # reads the shrunk image's pixels
        height, width = small
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]  # crop pixel -> image pixel
    centres = np.arange(side, dtype=np.float64) + 0.5
    xs, ys = np.meshgrid(centres, centres)
    source_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    source_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    grid = np.stack([2 * source_x / width - 1, 2 * source_y / height - 1], axis=-1)[None]
    grid = torch.from_numpy(grid.astype(np.float32))
    warped = F.grid_sample((pixels - fill)[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped[0] + fill


def similarity_matrix(source, target) -> np.ndarray:
    """The 2x3 similarity transform (no reflection) that maps points `source` (N, 2) onto `target` (N, 2) in the
    least-squares sense (Umeyama's closed form)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    variance = (s**2).sum() / len(s)
    if variance <= 0:
        raise ValueError("the landmarks' eye and mouth anchors coincide: cannot align the face from them.")
    u, singular, vt = np.linalg.svd(t.T @ s / len(s))
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    linear = (singular * np.diag(flip)).sum() / variance * (u @ flip @ vt)
    return np.c_[linear, mean_t - linear @ mean_s]


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
