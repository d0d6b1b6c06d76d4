"""The "Estimate pain" engine: a ViTPain model behind the `pain-estimation` pipeline, face detection and alignment to
the framing of the generated data, and per-AU attention maps over the face."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

import modeling_vitpain  # noqa: F401  (registers ViTPain and the pain-estimation task)
from modeling_vitpain.image_processing_vitpain import ALIGNED_FILL
from dataset_builder.alignment import AlignedFace, FaceNotFoundError, align_photo, detect_landmarks
from generation.columns import colorize_heatmap
from generation.errors import Pain3DError
from generation.views import DEFAULT_IMAGE_SIZE

TRAIN_COMMAND = (
    "pain3d generate --output 3dpain-250 --num-identities 250 --image-size 112 --workers 2\n"
    "python scripts/train_vitpain.py --dataset 3dpain-250 --modality rgb --use_neutral_reference --face_crop aligned "
    "--output_dir exp/rgb\n"
    "python demo/app.py --model exp/rgb"
)
ALIGNED_SIZE = DEFAULT_IMAGE_SIZE  # photos are framed like the generator's renders; the processor resizes or crops


class NoFaceError(Pain3DError, ValueError):
    """No face was found in a photo."""


def align(photo: Image.Image) -> Image.Image:
    """The face of a photo found (dlib's HOG detector and 68-point model) and aligned to the framing of the renders
    by `dataset_builder.align_photo`; NoFaceError with what to do when there is none."""
    return aligned_face(photo).image


def aligned_face(photo: Image.Image, is_crop: bool = False) -> AlignedFace:
    """`align`, keeping the 68 landmarks in the aligned image; a face crop (`is_crop`) is only searched for them."""
    try:
        if is_crop:
            return AlignedFace(photo, detect_landmarks(photo), np.array([[1.0, 0, 0], [0, 1.0, 0]]))
        return align_photo(photo, size=ALIGNED_SIZE)
    except FaceNotFoundError as error:
        raise NoFaceError(
            f"No face found in the photo ({error}). Use a photo with one face, seen from the front and well lit, "
            "or tick 'already a face crop' if it is framed like the generated faces."
        ) from None


@dataclass
class Estimate:
    pspi: float
    action_units: dict[str, float]
    pain_probability: dict[str, float]
    face: Image.Image  # what the model saw (aligned)
    neutral_face: Image.Image | None
    attention_maps: list[tuple[Image.Image, str]]
    notes: list[str]

    def as_dict(self) -> dict:
        return {
            "pspi": self.pspi,
            "action_units": self.action_units,
            "pain_probability": self.pain_probability,
            "notes": self.notes,
        }


class PainEstimator:
    """`model` is a ViTPain folder or Hub id (an RGB model); photos go through `align` unless they are face crops."""

    def __init__(self, model: str):
        from transformers import pipeline

        self.source = model
        # The registered classes run the model, also for folders that record their own pipeline code (the training
        # scripts' folders, for machines without the package): no remote code, no prompt that would wait on stdin.
        self.pipeline = pipeline("pain-estimation", model=model, trust_remote_code=False)
        self.config = self.pipeline.model.config
        if self.config.input_modality != "rgb":
            raise ValueError(
                f"{model} reads {self.config.input_modality} maps, not photos: give the demo an RGB ViTPain "
                "(a student or an RGB baseline)."
            )

    def describe(self) -> str:
        neutral = "needs a neutral photo of the same person" if self.config.use_neutral_reference else "one photo"
        return f"Model: `{self.source}` ({self.config.backbone_type}, {self.config.image_size} px, {neutral})."

    @property
    def needs_landmarks(self) -> bool:
        """A model trained on the aligned face crop: its processor cuts the face out by the 68 landmarks."""
        return getattr(self.pipeline.image_processor, "face_crop", "none") == "aligned"

    def _face(self, photo: Image.Image, is_crop: bool, role: str, notes: list[str]):
        """(the face framed like the renders, its 68 landmarks in that image or None when the model needs none)."""
        photo = photo.convert("RGB")
        if is_crop and not self.needs_landmarks:
            return photo, None
        try:
            aligned = aligned_face(photo, is_crop)  # a face crop is framed already: only its landmarks are needed
        except NoFaceError as error:
            raise NoFaceError(f"{role}: {error}") from None
        except ImportError as error:  # dlib or its landmark model is missing
            if self.needs_landmarks:
                raise ValueError(f"{role}: this model reads the aligned face crop, cut by the face's landmarks, and "
                                 f"finding them needs dlib ({error}).") from None  # fmt: skip
            notes.append(f"{role}: used as it is, no face detection ({error}).")
            return photo, None
        if not is_crop:
            notes.append(f"{role}: face detected and aligned to the synthetic framing.")
        return aligned.image, (aligned.landmarks if self.needs_landmarks else None)

    def _seen(self, face: Image.Image, landmarks) -> Image.Image:
        """What the model saw: the face, or its aligned crop (the processor's own, at the model's size)."""
        if landmarks is None:
            return face
        import torch

        pixels = torch.from_numpy(np.asarray(face, np.float32).transpose(2, 0, 1) / 255.0)
        crop = self.pipeline.image_processor.aligned_crop(pixels, landmarks, fill=ALIGNED_FILL)
        return Image.fromarray((crop.numpy().transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8))

    def __call__(self, photo: Image.Image, neutral_photo: Image.Image | None = None, is_crop: bool = False) -> Estimate:
        import torch

        if photo is None:
            raise ValueError("Upload or capture a face photo first.")
        notes: list[str] = []
        if self.config.use_neutral_reference and neutral_photo is None:
            raise ValueError(
                "This model compares the face with a neutral photo of the same person: add one under 'Neutral photo'."
            )
        if not self.config.use_neutral_reference and neutral_photo is not None:
            notes.append("This model does not use a neutral photo; it was ignored.")
            neutral_photo = None
        face, landmarks = self._face(photo, is_crop, "Photo", notes)
        inputs = {"image": face, "landmarks": landmarks}
        if neutral_photo is not None:
            inputs["neutral_image"], inputs["neutral_landmarks"] = self._face(neutral_photo, is_crop, "Neutral photo",
                                                                              notes)  # fmt: skip
        model_inputs = self.pipeline.preprocess(inputs)  # the pipeline's own steps, so numbers match pipeline(...)
        with torch.inference_mode():
            outputs = self.pipeline.model(**model_inputs)
        result = self.pipeline.postprocess(outputs)
        face = self._seen(face, landmarks)
        maps = attention_overlays(face, outputs.au_attentions[0].float().numpy(), result["action_units"])
        return Estimate(
            pspi=result["pspi"],
            action_units=result["action_units"],
            pain_probability=result["pain_probability"],
            face=face,
            neutral_face=(self._seen(inputs["neutral_image"], inputs["neutral_landmarks"])
                          if neutral_photo is not None else None),  # fmt: skip
            attention_maps=maps,
            notes=notes,
        )


def attention_overlays(face: Image.Image, attentions: np.ndarray, action_units: dict[str, float], size: int = 192):
    """One picture per AU: its attention over the patch grid, upsampled and laid over the face."""
    grid = int(round(math.sqrt(attentions.shape[-1])))
    base = np.asarray(face.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32)
    out = []
    for name, attention in zip(action_units, attentions):
        # in multiples of uniform attention, shown from 0 to at least 2x uniform: a flat map stays dim
        weights = attention.reshape(grid, grid) * attention.size
        weights = np.clip(weights / max(2.0, float(weights.max())), 0.0, 1.0)
        heat = Image.fromarray((weights * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        colour = colorize_heatmap(np.asarray(heat, np.float32) / 255.0, vmax=1.0).astype(np.float32)
        blended = (0.45 * base + 0.55 * colour).clip(0, 255).astype(np.uint8)
        out.append((Image.fromarray(blended), f"{name}: {action_units[name]:.2f}"))
    return out


def pspi_gauge(pspi: float, maximum: float = 16.0) -> str:
    """An SVG half-circle gauge of PSPI (0-16) with the value written in the middle."""
    fraction = min(max(pspi / maximum, 0.0), 1.0)
    angle = math.pi * (1 - fraction)
    x, y = 100 + 80 * math.cos(angle), 100 - 80 * math.sin(angle)
    large = 0  # the arc never exceeds half a circle
    hue = 120 * (1 - fraction)  # green (no pain) .. red (PSPI 16)
    return (
        '<div class="pspi-gauge" data-pspi="{v:.2f}">'
        '<svg viewBox="0 0 200 120" width="260" role="img" aria-label="PSPI {v:.1f} of {m:g}">'
        '<path d="M20,100 A80,80 0 0,1 180,100" fill="none" stroke="#e5e7eb" stroke-width="18" stroke-linecap="round"/>'
        '<path d="M20,100 A80,80 0 {large},1 {x:.1f},{y:.1f}" fill="none" stroke="hsl({h:.0f},70%,45%)" '
        'stroke-width="18" stroke-linecap="round"/>'
        '<text x="100" y="92" text-anchor="middle" font-size="30" font-weight="700" fill="currentColor">{v:.1f}</text>'
        '<text x="100" y="114" text-anchor="middle" font-size="11" fill="currentColor">PSPI (0-{m:g})</text>'
        "</svg></div>"
    ).format(v=pspi, m=maximum, x=x, y=y, h=hue, large=large)


def message_html(text: str, kind: str = "info") -> str:
    return f'<div class="demo-message demo-{kind}">{html.escape(text)}</div>'
