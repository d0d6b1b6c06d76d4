"""Training views of a 3DPain dataset: decoded, resized, augmented and normalised torch tensors.

`PainTransform` is a batched `datasets` transform (`ds.with_transform(t)` / `ds.set_transform(t)`) that turns rows
with `pain_features` columns into model inputs:

    pixel_values          float32 (B, 3, S, S)  the pain image, normalised with the model's image_mean / image_std
    neutral_pixel_values  float32 (B, 3, S, S)  the neutral image of the same identity and view (zeros if missing)
    has_neutral           bool (B,)             whether the neutral image is real
    heatmap               float32 (B, 1, S, S)  pain-region heatmap in millimetres (zeros where missing); this key
    has_heatmap           bool (B,)             and has_heatmap are left out when no row of the batch has a heatmap
    pspi_labels           float32 (B,)          PSPI, 0-16
    action_unit_labels    float32 (B, A)        AU intensities in `au_names` order (default PAIN_AUS)
    view                  int64 (B,)            view label; "left" <-> "right" swapped when the sample was flipped

Resizing and normalisation belong to the model's image processor: `PainTransform.from_image_processor(processor)`
resizes and rescales through `processor.preprocess(..., do_normalize=False)` and normalises with its `image_mean` /
`image_std` after augmenting (as transformers' examples build `Normalize` from `image_processor.image_mean`), so a
model is trained and evaluated on exactly what `pipeline("pain-estimation")` feeds it. Built without a processor, the
transform resizes with PIL and normalises with the `image_mean` / `image_std` it is given: there is no default, as
the statistics belong to the model that reads the tensors. The data side never imports the model side: any object
with the processor's attributes works. A processor with `face_crop="aligned"` also owns the face crop: each row's
image, neutral image and heatmap are cut by `landmarks_2d` (UNBC rows: `landmarks_aam`; the neutral and heatmap with
the image's landmarks: the same camera and head pose), before the augmentation, exactly as the pipeline cuts a photo
from its landmarks.

Augmentations (train=True) follow the field's recipe (those of the official 3D-Pain loader): horizontal flip,
small rotation, translation/scale, colour jitter and Gaussian blur. One geometric warp per sample is applied to
image, neutral and heatmap together (so they stay aligned); colour jitter and blur use the same parameters for image
and neutral and never touch the heatmap (it is a label in mm). Plain torch + PIL, seeded; no torchvision.

Decoding is the slow part of an epoch, so the transform decodes image columns itself when they arrive undecoded
(`prepare_dataset` casts them to `Image(decode=False)`), and keeps each (identity, view) neutral image, decoded, resized
and (when not training) normalised, in a bounded LRU cache: one neutral serves every expression of that identity and
view, so an epoch decodes it once instead of once per row.
`pain_dataloader` fetches and transforms whole batches at once, in threads (or torch DataLoader worker processes).
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Image
from PIL import Image as PILImage

from generation.facs import PAIN_AUS

from generation.columns import HEATMAP_UNITS_PER_MM, IMAGE_COLUMNS
from .integrity import check_labels

# Columns a training batch needs; `pain_dataloader` reads only these.
TRAINING_COLUMNS = ("image", "neutral_image", "heatmap", "identity_id", "view", "action_units", "pspi", "sample_id",
                    "landmarks_2d", "landmarks_aam")
# Landmarks the aligned face crop is cut by, first found first: the generated rows' 68 points, else the UNBC archive's
# 66 AAM points (in the pixels of `load_unbc`'s images; the crop's anchors, eyes and mouth corners, are among 0-59).
CROP_LANDMARKS = ("landmarks_2d", "landmarks_aam")
# View labels that trade places under a horizontal flip.
MIRRORED_VIEWS = (("left", "right"),)


@dataclass(frozen=True)
class Augmentation:
    """Random training augmentation; defaults are the official 3D-Pain loader's (torchvision) settings.

    `hflip_p` probability; `rotation_deg` max |angle| in degrees; `translate` max shift as a fraction of the image
    size; `scale` (min, max) zoom; `brightness`/`contrast`/`saturation` max relative change; `hue` max shift in turns
    (0.5 = half the colour wheel); `blur_sigma` (min, max) Gaussian sigma in pixels of a 3x3 kernel.
    """

    hflip_p: float = 0.3
    rotation_deg: float = 5.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.2
    hue: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 1.0)


def prepare_dataset(dataset: Dataset, columns: Sequence[str] = TRAINING_COLUMNS) -> Dataset:
    """Keep the columns training needs and leave image columns undecoded (the transform decodes and caches)."""
    dataset = dataset.select_columns([c for c in columns if c in dataset.column_names])
    for name in IMAGE_COLUMNS:
        if name in dataset.column_names and dataset.features[name].decode:
            dataset = dataset.cast_column(name, Image(decode=False))
    return dataset


def _open(value: Any) -> PILImage.Image | None:
    """A PIL image from a decoded image, a {"bytes", "path"} dict, raw bytes or None."""
    if value is None or isinstance(value, PILImage.Image):
        return value
    if isinstance(value, (bytes, bytearray)):
        return PILImage.open(io.BytesIO(value))
    if value.get("bytes") is not None:
        return PILImage.open(io.BytesIO(value["bytes"]))
    if value.get("path"):
        return PILImage.open(value["path"])
    return None


def _batch_tensor(*shape: int) -> torch.Tensor:
    """An uninitialised float32 tensor; in a DataLoader worker it is allocated in shared memory, as default_collate
    does, so handing the batch to the main process copies nothing."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(*shape)
    storage = torch.empty(0)._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return torch.empty(0).new(storage).view(*shape)


class PainTransform:
    """Batched transform from `pain_features` rows to model tensors (see the module docstring for the keys).

    `image_size` output side in pixels (bilinear resize, as torchvision's Resize((S, S)) on PIL images);
    `train` enables `augmentation`; `seed` makes augmentation reproducible (mixed with the DataLoader worker id);
    `view_names` the dataset's view ClassLabel names (needed to swap left/right on flips; `for_dataset` reads them);
    `neutral_cache_mb` memory per process for decoded neutral images (float32, 0.6 MB each at 224 px; 0 disables);
    `return_ids` adds `sample_id` (a list of strings) to the output;
    `image_mean` / `image_std` the normalisation, per RGB channel of [0, 1] pixels: required, as they belong to the
    model (`from_image_processor` takes them from the model's processor);
    `image_processor` resizes and rescales RGB images (and, for a heatmap processor, heatmaps) instead of PIL.
    """

    def __init__(
        self,
        image_size: int = 224,
        *,
        train: bool = False,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        view_names: Sequence[str] | None = None,
        au_names: Sequence[str] = PAIN_AUS,
        neutral_cache_mb: float = 512,
        return_ids: bool = False,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        image_processor: Any = None,
    ):
        if image_mean is None or image_std is None:
            raise TypeError(
                "PainTransform needs the model's image_mean and image_std: build it with "
                "PainTransform.from_image_processor(processor), or pass image_mean= and image_std="
            )
        self.image_size = int(image_size)
        modality = getattr(image_processor, "input_modality", "rgb")
        self.image_processor = image_processor if modality == "rgb" else None
        self.heatmap_processor = image_processor if modality == "heatmap" else None
        # The processor's aligned crop (None: whole images); it needs each row's landmarks_2d.
        self.face_crop = image_processor if getattr(image_processor, "face_crop", "none") == "aligned" else None
        self.train = train
        self.augmentation = augmentation or Augmentation()
        self.seed = seed
        self.view_names = list(view_names) if view_names is not None else None
        self.au_names = tuple(au_names)
        self.neutral_cache_mb = neutral_cache_mb
        self._cache_limit = int(neutral_cache_mb * 2**20 // (3 * 4 * self.image_size**2))
        self.return_ids = return_ids
        self._mirror = self._mirror_table(self.view_names)
        self._cache: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the cache is shared by `pain_dataloader`'s threads
        self._generator: torch.Generator | None = None
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self._mean_np = np.asarray(image_mean, dtype=np.float32).reshape(3, 1, 1)
        self._std_np = np.asarray(image_std, dtype=np.float32).reshape(3, 1, 1)

    @classmethod
    def from_image_processor(cls, image_processor: Any, **kwargs) -> "PainTransform":
        """The transform a model with this image processor trains and is evaluated on: the processor's size, and
        its resizing, rescaling and normalisation (`image_mean` / `image_std`; none when `do_normalize` is off)."""
        size = image_processor.size
        if size["height"] != size["width"]:
            raise ValueError(f"PainTransform makes square images; the image processor's size is {size}.")
        normalise = getattr(image_processor, "do_normalize", True)
        mean = image_processor.image_mean if normalise else (0.0, 0.0, 0.0)
        std = image_processor.image_std if normalise else (1.0, 1.0, 1.0)
        return cls(size["height"], image_mean=mean, image_std=std, image_processor=image_processor, **kwargs)

    @classmethod
    def for_dataset(cls, dataset: Dataset, **kwargs) -> "PainTransform":
        """A transform that reads the view names (for left/right swaps on flips) from `dataset`'s `view` ClassLabel."""
        view = dataset.features.get("view")
        kwargs.setdefault("view_names", view.names if isinstance(view, ClassLabel) else None)
        return cls(**kwargs)

    @staticmethod
    def _mirror_table(view_names: Sequence[str] | None) -> list[int] | None:
        if view_names is None:
            return None
        table = list(range(len(view_names)))
        for a, b in MIRRORED_VIEWS:
            if a in view_names and b in view_names:
                i, j = view_names.index(a), view_names.index(b)
                table[i], table[j] = j, i
        return table

    def __getstate__(self):  # DataLoader worker processes start with an empty cache and their own generator
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        state["_generator"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- decoding -------------------------------------------------------------------------------------------------

    def _crop_args(self, landmarks: Any) -> dict:
        """The processor's `landmarks=` argument when it crops faces (none otherwise)."""
        if self.face_crop is None:
            return {}
        if landmarks is None:
            raise ValueError("the image processor crops faces (face_crop='aligned') but the row has no landmarks_2d "
                             "(or UNBC's landmarks_aam): use a dataset with landmarks, or a processor with "
                             "face_crop='none'")
        return {"landmarks": landmarks}

    def _rgb_into(self, value: Any, out: torch.Tensor, landmarks: Any = None) -> bool:
        """Decode, resize (or crop) and rescale an RGB image into `out` (3, S, S) in [0, 1]; False when there is
        none."""
        if self.image_processor is None:
            array = self._resize_rgb(value)
            if array is None:
                return False
            self._unit(array, out)
            return True
        image = _open(value)
        if image is None:
            return False
        unit = self.image_processor.preprocess(image, do_normalize=False, return_tensors="np",
                                               **self._crop_args(landmarks))["pixel_values"][0]
        np.copyto(out.numpy(), unit)
        return True

    def _resize_rgb(self, value: Any) -> np.ndarray | None:
        image = _open(value)
        if image is None:
            return None
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), PILImage.BILINEAR)
        return np.asarray(image)

    def _neutral_into(self, value: Any, key: Any, out: torch.Tensor, landmarks: Any = None) -> bool:
        """Write the neutral image into `out` (3, S, S): normalised when not training, in [0, 1] when training (the
        augmentation comes first). Cached per (identity, view) key; False when there is no neutral image."""
        if key is not None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
            if cached is not None:
                np.copyto(out.numpy(), cached)
                return True
        if not self._rgb_into(value, out, landmarks):
            return False
        if not self.train:
            self._normalise(out)
        if key is not None and self._cache_limit > 0:
            copy = out.numpy().copy()
            with self._lock:
                self._cache[key] = copy
                if len(self._cache) > self._cache_limit:
                    self._cache.popitem(last=False)
        return True

    def _heatmap_mm(self, value: Any, landmarks: Any = None) -> np.ndarray | None:
        image = _open(value)
        if image is None:
            return None
        units = np.asarray(image, dtype=np.float32)
        if units.ndim == 3:  # a colourised heatmap is for viewing only: it carries no millimetres
            raise ValueError(
                f"heatmap has {units.shape[2]} channels; expected a one-channel 16-bit PNG in micrometres "
                f"(pixel / {HEATMAP_UNITS_PER_MM} = mm), as the 3DPain generator writes"
            )
        if self.heatmap_processor is not None:  # a heatmap model's processor owns the resize (in mm: scale 1)
            mm = PILImage.fromarray(units / HEATMAP_UNITS_PER_MM, mode="F")
            return self.heatmap_processor.preprocess(mm, heatmap_scale_mm=1.0, return_tensors="np",
                                                     **self._crop_args(landmarks))["pixel_values"][0, 0]
        if self.face_crop is not None:  # an RGB model's crop, for a distillation teacher's heatmap
            mm = torch.from_numpy(units / np.float32(HEATMAP_UNITS_PER_MM))[None]
            return self.face_crop.aligned_crop(mm, self._crop_args(landmarks)["landmarks"], fill=0.0).numpy()[0]
        if units.shape != (self.image_size, self.image_size):
            resized = PILImage.fromarray(units, mode="F").resize((self.image_size, self.image_size), PILImage.BILINEAR)
            units = np.asarray(resized, dtype=np.float32)
        return units / HEATMAP_UNITS_PER_MM

    # ---- the transform ----------------------------------------------------------------------------------------------

    # Per-image conversions run in numpy: single-threaded (torch would fan 150k-element ops out to its intra-op
    # threads, which costs more than it saves from loader threads) and the same IEEE float32 operations as
    # torchvision's ToTensor / Normalize, so the results are bit-identical to them.

    def _unit(self, array: np.ndarray, out: torch.Tensor) -> None:
        """uint8 HWC -> float32 CHW in [0, 1], written into `out` (a (3, S, S) tensor)."""
        np.divide(array.transpose(2, 0, 1), np.float32(255), out=out.numpy(), dtype=np.float32)

    def _normalise(self, unit: torch.Tensor) -> None:
        """Normalisation of one (3, S, S) image with `image_mean` / `image_std`, in place: (x - mean) / std."""
        values = unit.numpy()
        np.subtract(values, self._mean_np, out=values)
        np.divide(values, self._std_np, out=values)

    def __call__(self, batch: Mapping[str, Sequence[Any]], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Transform a batch (a dict of columns, as `datasets` hands to `with_transform`). `generator` draws the
        augmentation (default: this transform's own, seeded from `seed` and the worker id)."""
        check_labels(batch["pspi"], batch["action_units"], batch.get("sample_id"))  # before any image is decoded
        n = len(batch["image"])
        size = self.image_size
        identities = batch.get("identity_id")
        views = batch.get("view")
        landmarks = next((batch[name] for name in CROP_LANDMARKS if batch.get(name)), [None] * n)
        neutral_column = batch.get("neutral_image") or [None] * n
        heatmap_column = batch.get("heatmap") or [None] * n
        with_heatmaps = any(value is not None for value in heatmap_column)
        pixels = _batch_tensor(n, 3, size, size)
        neutral_pixels = _batch_tensor(n, 3, size, size)
        heatmap_mm = _batch_tensor(n, 1, size, size) if with_heatmaps else None
        has_neutral = torch.zeros(n, dtype=torch.bool)
        has_heatmap = torch.zeros(n, dtype=torch.bool)
        # One row at a time: per-image tensor ops stay in the CPU cache, whole-batch ones do not (3-4x slower).
        for i in range(n):
            if not self._rgb_into(batch["image"][i], pixels[i], landmarks[i]):
                raise ValueError(f"row {i} of the batch has no image")
            # A cropped neutral follows its row's landmarks: it is cached per (identity, view) only uncropped.
            key = (identities[i], views[i]) if identities is not None and views is not None else None
            key = None if self.face_crop is not None else key
            if self._neutral_into(neutral_column[i], key, neutral_pixels[i], landmarks[i]):
                has_neutral[i] = True
            else:
                neutral_pixels[i] = 0
            if with_heatmaps:
                heatmap = self._heatmap_mm(heatmap_column[i], landmarks[i])
                if heatmap is not None:
                    heatmap_mm[i, 0] = torch.from_numpy(heatmap)
                    has_heatmap[i] = True
                else:
                    heatmap_mm[i] = 0
            if not self.train:
                self._normalise(pixels[i])

        view = torch.tensor(views if views is not None else [-1] * n, dtype=torch.int64)
        if self.train:
            generator = generator or self._rng()
            pixels, neutral_pixels, heatmap_mm, flipped = self._augment(pixels, neutral_pixels, heatmap_mm, generator)
            for i in range(n):
                self._normalise(pixels[i])
                if has_neutral[i]:
                    self._normalise(neutral_pixels[i])
                else:
                    neutral_pixels[i] = 0  # the warp and jitter may have moved values into it
            if self._mirror is not None:
                mirrored = torch.tensor(self._mirror, dtype=torch.int64)[view.clamp(min=0)]
                view = torch.where(flipped & (view >= 0), mirrored, view)
        out = {"pixel_values": pixels, "neutral_pixel_values": neutral_pixels, "has_neutral": has_neutral}
        if with_heatmaps:
            out.update(heatmap=heatmap_mm, has_heatmap=has_heatmap)
        out.update(
            pspi_labels=torch.tensor(batch["pspi"], dtype=torch.float32),
            action_unit_labels=torch.tensor(
                [[float(aus.get(name) or 0.0) for name in self.au_names] for aus in batch["action_units"]],
                dtype=torch.float32,
            ).reshape(n, len(self.au_names)),
            view=view,
        )
        if self.return_ids:
            out["sample_id"] = list(batch["sample_id"])
        return out

    # ---- augmentation --------------------------------------------------------------------------------------------

    def _rng(self) -> torch.Generator:
        if self._generator is None:
            worker = torch.utils.data.get_worker_info()
            self._generator = torch.Generator().manual_seed(self.seed * 1000003 + (worker.id + 1 if worker else 0))
        return self._generator

    @staticmethod
    def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    def sample_geometry(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample affine matrices (n, 2, 3) in `affine_grid`'s normalised coordinates, and the flip flags."""
        aug, uniform = self.augmentation, lambda *args: self._uniform(generator, *args)
        flipped = torch.rand(n, generator=generator) < aug.hflip_p
        angle = uniform(n, -aug.rotation_deg, aug.rotation_deg) * (math.pi / 180)
        scale = uniform(n, *aug.scale)
        shift = uniform(2 * n, -aug.translate, aug.translate).view(n, 2) * 2  # fraction of size -> [-1, 1] units
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        flip = torch.where(flipped, -1.0, 1.0)
        # Output pixel p samples input at R^-1 S^-1 (p - t), then x is mirrored when flipped.
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * flip, sin * flip
        theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
        theta[:, 0, 2] = -(cos * shift[:, 0] + sin * shift[:, 1]) * flip
        theta[:, 1, 2] = -(-sin * shift[:, 0] + cos * shift[:, 1])
        return theta, flipped

    @staticmethod
    def warp(stack: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Apply per-sample affine `theta` to every channel of `stack` (B, C, H, W); outside is filled with 0."""
        grid = F.affine_grid(theta, list(stack.shape), align_corners=False)
        return F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _augment(self, pixels, neutral_pixels, heatmap_mm, generator):
        n = pixels.shape[0]
        theta, flipped = self.sample_geometry(n, generator)
        # One warp call over the channel stack: image, neutral and heatmap get exactly the same geometry.
        stack = [pixels, neutral_pixels] + ([heatmap_mm] if heatmap_mm is not None else [])
        warped = self.warp(torch.cat(stack, dim=1), theta)
        pixels, neutral_pixels = warped[:, :3], warped[:, 3:6]
        heatmap_mm = warped[:, 6:] if heatmap_mm is not None else None
        aug = self.augmentation
        if aug.brightness or aug.contrast or aug.saturation or aug.hue:
            pixels, neutral_pixels = self._colour_jitter(torch.cat([pixels, neutral_pixels]), generator).chunk(2)
        if aug.blur_sigma[1] > 0:
            pixels, neutral_pixels = self._blur(torch.cat([pixels, neutral_pixels]), generator).chunk(2)
        return pixels, neutral_pixels, heatmap_mm, flipped

    def _colour_jitter(self, rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Brightness, contrast, saturation, hue (same factors for a sample's image and neutral: rows i and i + n)."""
        aug, n = self.augmentation, rgb.shape[0] // 2

        def twice(low: float, high: float) -> torch.Tensor:
            return torch.cat([self._uniform(generator, n, low, high)] * 2).view(-1, 1, 1, 1)

        brightness = twice(1 - aug.brightness, 1 + aug.brightness)
        contrast = twice(1 - aug.contrast, 1 + aug.contrast)
        saturation = twice(1 - aug.saturation, 1 + aug.saturation)
        hue = twice(-aug.hue, aug.hue) * (2 * math.pi)
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        rgb = (rgb * brightness).clamp(0, 1)
        mean_gray = (rgb * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        rgb = ((rgb - mean_gray) * contrast + mean_gray).clamp(0, 1)
        gray = (rgb * weights).sum(1, keepdim=True)
        rgb = ((rgb - gray) * saturation + gray).clamp(0, 1)
        if not aug.hue:
            return rgb
        # Hue: rotate the chroma plane of YIQ (a close, cheap stand-in for an HSV hue shift).
        y = (rgb * weights).sum(1, keepdim=True)
        i = (rgb * torch.tensor([0.596, -0.274, -0.322]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        q = (rgb * torch.tensor([0.211, -0.523, 0.312]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        cos, sin = torch.cos(hue), torch.sin(hue)
        i, q = i * cos - q * sin, i * sin + q * cos
        r = y + 0.956 * i + 0.621 * q
        g = y - 0.272 * i - 0.647 * q
        b = y - 1.106 * i + 1.703 * q
        return torch.cat([r, g, b], dim=1).clamp(0, 1)

    def _blur(self, rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """3x3 Gaussian blur with a random sigma per sample (shared by its image and neutral)."""
        n = rgb.shape[0] // 2
        sigma = self._uniform(generator, n, *self.augmentation.blur_sigma).clamp(min=1e-3).repeat(2)
        taps = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0]).view(1, 3) ** 2) / (2 * sigma.view(-1, 1) ** 2))
        taps = taps / taps.sum(1, keepdim=True)
        kernels = (taps[:, :, None] * taps[:, None, :]).repeat_interleave(3, dim=0).unsqueeze(1)  # (2n*3, 1, 3, 3)
        b, c, h, w = rgb.shape
        padded = F.pad(rgb.reshape(1, b * c, h, w), (1, 1, 1, 1), mode="reflect")
        return F.conv2d(padded, kernels, groups=b * c).view(b, c, h, w)


class _BatchedDataset(torch.utils.data.Dataset):
    """Indexing with a list of rows returns the transformed batch (one arrow read per batch)."""

    def __init__(self, dataset: Dataset, transform: PainTransform):
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> dict[str, Any]:
        return self.transform(self.dataset[indices])


class PainBatchLoader:
    """Iterates `PainTransform` batches of a dataset, `num_workers` threads ahead of the consumer.

    Threads rather than processes: PIL decoding/resizing and torch ops release the GIL, the neutral cache is shared
    by all threads, and batches need no pickling or shared-memory copies to reach the training loop. Each epoch
    reshuffles (seeded by `seed` and the epoch number); augmentation is drawn from a generator seeded by
    (seed, epoch, batch number), so results do not depend on thread timing.
    """

    def __init__(self, dataset: Dataset, transform: PainTransform, *, batch_size: int, shuffle: bool,
                 drop_last: bool, num_workers: int, seed: int):
        self.dataset, self.transform = dataset, transform
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.num_workers, self.seed, self.epoch = num_workers, seed, 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _batches(self) -> list[list[int]]:
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1000003 + self.epoch))
            order = order.tolist()
        else:
            order = list(range(n))
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)][: len(self)]

    def _load(self, number: int, indices: list[int]) -> dict[str, Any]:
        generator = torch.Generator().manual_seed((self.seed * 1000003 + self.epoch) * 1000003 + number)
        return self.transform(self.dataset[indices], generator=generator)

    def __iter__(self):
        batches = self._batches()
        self.epoch += 1
        if self.num_workers <= 0:
            for number, indices in enumerate(batches):
                yield self._load(number, indices)
            return
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="pain3d-loader") as pool:
            pending: deque = deque()
            ahead = 2 * self.num_workers  # bounded read-ahead keeps memory flat
            for number, indices in enumerate(batches):
                pending.append(pool.submit(self._load, number, indices))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def pain_dataloader(
    dataset: Dataset,
    transform: PainTransform,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 2,
    seed: int = 0,
    backend: str = "threads",
    **loader_kwargs,
):
    """Batches of `transform`'s tensors over `dataset` (pain_features columns).

    Every batch is one arrow read of only the training columns, images are decoded by the transform (never by
    `datasets` first) and neutral images come from its cache. `backend="threads"` (default) returns a
    `PainBatchLoader`; `backend="processes"` a torch `DataLoader` with `num_workers` worker processes (extra
    `loader_kwargs` go to it), for machines with many cores where decoding outgrows one process.
    """
    if transform.view_names is None and isinstance(dataset.features.get("view"), ClassLabel):
        transform.view_names = dataset.features["view"].names
        transform._mirror = transform._mirror_table(transform.view_names)
    prepared = prepare_dataset(dataset)
    if backend == "threads":
        if loader_kwargs:
            raise TypeError(f"{sorted(loader_kwargs)} only apply to backend='processes'")
        return PainBatchLoader(prepared, transform, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                               num_workers=num_workers, seed=seed)
    if backend != "processes":
        raise ValueError(f"backend must be 'threads' or 'processes', got {backend!r}")
    sampler = (
        torch.utils.data.RandomSampler(prepared, generator=torch.Generator().manual_seed(seed))
        if shuffle
        else torch.utils.data.SequentialSampler(prepared)
    )
    batches = torch.utils.data.BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    if num_workers > 0:
        loader_kwargs.setdefault("persistent_workers", True)
    return torch.utils.data.DataLoader(
        _BatchedDataset(prepared, transform), sampler=batches, batch_size=None, num_workers=num_workers,
        **loader_kwargs,
    )
