"""The `pain-estimation` pipeline: image (+ optional neutral image) -> PSPI, action units, pain probabilities.

This file travels alone as remote code (a pipeline saved with `save_pretrained` copies it): it imports only torch and
transformers.
"""

from __future__ import annotations

import torch
from transformers import Pipeline

_PAIR_KEYS = {"image", "neutral_image", "landmarks", "neutral_landmarks"}


class PainEstimationPipeline(Pipeline):
    """
    Pain estimation with a ViTPain model.

    ```python
    >>> import modeling_vitpain  # registers the task
    >>> from transformers import pipeline
    >>> pain = pipeline("pain-estimation", model="path/or/hub-id")
    >>> pain(face)                                  # one image -> one dict
    >>> pain([face_a, face_b], batch_size=2)        # a list -> a list of dicts
    >>> pain(face, neutral_images=neutral_face)     # models trained with a neutral reference
    ```

    Each result is `{"pspi": float (0-16), "action_units": {"AU4": float, ...} (FACS intensity),
    "pain_probability": {">=1": p, ">=2": p, ">=3": p}}` with one probability per `config.pain_thresholds` entry.
    Inputs may also be dicts `{"image": ..., "neutral_image": ...}`; a model whose processor has
    `face_crop="aligned"` takes `{"image": photo, "landmarks": its 68 landmarks in pixels}` (and optionally
    `"neutral_landmarks"`) and serves the aligned crop it was trained on.
    """

    # Declared so that `pipeline()` resolves (and asks about remote code for) nothing but the image processor.
    _load_processor = False
    _load_image_processor = True
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.image_processor is None:
            raise ValueError("The pain-estimation pipeline needs an image processor (ViTPainImageProcessor).")
        processor_modality = getattr(self.image_processor, "input_modality", None)
        if processor_modality != self.model.config.input_modality:
            raise ValueError(
                f"The image processor prepares {processor_modality!r} inputs but the model expects "
                f"{self.model.config.input_modality!r}: use ViTPainImageProcessor.from_model_config(model.config)."
            )

    def __call__(self, images, neutral_images=None, **kwargs):
        """
        Args:
            images: a face image (PIL image, array, tensor or file path; a float heatmap for heatmap models), a
                `{"image": ..., "neutral_image": ...}` dict, or a list of either.
            neutral_images: neutral image(s) of the same faces, one per image (a list when `images` is a list).
            batch_size (`int`, *optional*): how many images go through the model at once.

        Returns:
            A dict for a single input, a list of dicts for a list of inputs.
        """
        if neutral_images is not None:
            images = _pair(images, neutral_images)
        if isinstance(images, (list, tuple)) and not images:
            return []  # a list in, a list out: no images, no results
        return super().__call__(images, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        if kwargs:
            raise TypeError(f"Unexpected pain-estimation arguments: {sorted(kwargs)}.")
        return {}, {}, {}

    def preprocess(self, inputs):
        if isinstance(inputs, dict):
            if not set(inputs) <= _PAIR_KEYS or "image" not in inputs:
                raise ValueError(
                    "Input dicts need an 'image' key and optionally 'neutral_image', 'landmarks' and "
                    f"'neutral_landmarks', got keys {sorted(inputs)}."
                )
            image, neutral_image = inputs["image"], inputs.get("neutral_image")
            crop = {key: inputs[key] for key in ("landmarks", "neutral_landmarks") if inputs.get(key) is not None}
        else:
            image, neutral_image, crop = inputs, None, {}
        if self.model.config.use_neutral_reference and neutral_image is None:
            raise ValueError(
                "This model compares each face with a neutral image of the same face and view "
                "(config.use_neutral_reference=True): call the pipeline with neutral_images=, e.g. "
                "pain(face, neutral_images=neutral_face)."
            )
        model_inputs = self.image_processor(image, neutral_images=neutral_image, return_tensors="pt", **crop)
        return model_inputs.to(self.dtype)

    def _forward(self, model_inputs):
        return self.model(**model_inputs)

    def postprocess(self, model_outputs):
        config = self.model.config
        action_units = model_outputs["action_units"][0].float().tolist()
        probabilities = torch.sigmoid(model_outputs["pain_logits"][0].float()).tolist()
        return {
            "pspi": float(model_outputs["pspi"][0]),
            "action_units": dict(zip(config.au_names, action_units, strict=True)),
            "pain_probability": {
                f">={threshold:g}": probability
                for threshold, probability in zip(config.pain_thresholds, probabilities, strict=True)
            },
        }


def _pair(images, neutral_images):
    """Zip images with their neutral images into `{"image", "neutral_image"}` dicts, refusing count mismatches."""
    images_is_list = isinstance(images, (list, tuple))
    neutral_is_list = isinstance(neutral_images, (list, tuple))
    if images_is_list != neutral_is_list:
        raise ValueError(
            "images and neutral_images must both be single images or both be lists (one neutral image per image)."
        )
    if not images_is_list:
        return {"image": images, "neutral_image": neutral_images}
    if len(images) != len(neutral_images):
        raise ValueError(
            f"Got {len(images)} image(s) but {len(neutral_images)} neutral image(s): pass one neutral image per image."
        )
    return [{"image": image, "neutral_image": neutral} for image, neutral in zip(images, neutral_images, strict=True)]


__all__ = ["PainEstimationPipeline"]
