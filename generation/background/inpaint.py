"""Background inpainting (`--background inpaint`): a diffusion inpainting model paints a scene around the neutral
render of each (identity, view), from a face mask and a scene prompt.

The inpainted image is only used as a background plate: every render of that view (neutral and pain) is then
composited over it by the renderer, exactly like a procedural background, so face pixels are the rendered ones
bit for bit (only the one-pixel anti-aliased silhouette ring mixes in the plate, as it does with any background).
"""

from __future__ import annotations

import numpy as np

from ..diffusion_models import InpaintOptions, load_inpaint_pipeline, resolve_device

# The neutral render is shown to the inpainting model over this flat grey.
SOURCE_BACKGROUND = (128, 128, 128)


def check_image_and_mask(image: np.ndarray, face_mask: np.ndarray) -> None:
    """One clear error for an image or mask the inpainter cannot use."""
    image, face_mask = np.asarray(image), np.asarray(face_mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"the image to inpaint must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}: convert it with "
            "np.asarray(PIL.Image.open(...).convert('RGB'))"
        )
    if face_mask.dtype != bool:
        raise ValueError(f"the face mask must be a boolean (H, W) array (True = face, kept), got {face_mask.dtype}")
    if face_mask.shape != image.shape[:2]:
        raise ValueError(f"the face mask is {face_mask.shape} but the image is {image.shape[:2]}: they must match")
    if face_mask.all():
        raise ValueError("the face mask covers the whole image: there is no background to inpaint")


class BackgroundInpainter:
    """Paints background plates with an inpainting pipeline (`InpaintOptions`: model id, steps, guidance,
    resolution, scenes, dtype). `device` defaults to this process's GPU (or the CPU); `pipeline` replaces loading."""

    def __init__(self, options: InpaintOptions | dict | None = None, device: str | None = None, pipeline=None):
        self.options = options if isinstance(options, InpaintOptions) else InpaintOptions.from_dict(options)
        self.device = resolve_device(device)
        self.pipeline = pipeline if pipeline is not None else load_inpaint_pipeline(self.options, self.device)

    def __call__(self, image: np.ndarray, face_mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        """A background plate (uint8, the image's shape) painted around `face_mask` (True = face, kept) from
        `prompt`. The model works at `options.resolution`; the plate is resized back to the image."""
        import torch
        from PIL import Image

        check_image_and_mask(image, face_mask)
        options = self.options
        size = (options.resolution, options.resolution)
        source = Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)
        # diffusers' convention: white = repaint, black = keep
        mask = Image.fromarray(np.where(face_mask, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
        with torch.inference_mode():
            plate = self.pipeline(
                prompt=prompt,
                negative_prompt=options.negative_prompt,
                image=source,
                mask_image=mask,
                height=options.resolution,
                width=options.resolution,
                num_inference_steps=options.steps,
                guidance_scale=options.guidance_scale,
                strength=1.0,
                generator=torch.Generator("cpu").manual_seed(int(seed)),
                output_type="np",
            ).images[0]
        plate = Image.fromarray((np.clip(plate, 0, 1) * 255 + 0.5).astype(np.uint8))
        return np.asarray(plate.resize((image.shape[1], image.shape[0]), Image.Resampling.LANCZOS))
