"""The `diffusion` texture backend: a depth-ControlNet Stable Diffusion image of each identity, baked into its UV
atlas (the paper's texture stage).

Per identity:
1. render the neutral mesh's depth (and optionally normals) from each texture view (`ViewGeometry`);
2. generate a portrait with a depth-ControlNet pipeline (SD 1.5 or SDXL, any ids or local folders) from a prompt
   built from the identity's demographics ("A photo of an elderly East Asian woman with a neutral expression, ...")
   and a negative prompt; the noise comes from a CPU `torch.Generator` seeded from (seed, identity), so the result
   does not depend on which process or GPU renders the identity;
3. bake the images into the atlas and fill unseen texels from the mirror side or the procedural texture
   (`TextureBaker`).
The texture is then used for the neutral and every pain expression of the identity, like any other backend's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..background.prompts import identity_prompt
from ..demographics import Demographics
from ..diffusion_models import DiffusionTextureOptions, load_texture_pipeline, resolve_device
from ..face.model import FaceModel
from ..render import FaceRenderer
from ..sampling.appearance import Appearance
from ..views import View
from .bake import TextureBaker
from .procedural import ProceduralTexturer, SkinTexture


@dataclass(frozen=True)
class TextureReport:
    """How one diffusion texture was made: prompt, per-view seeds, UV coverage (fractions of the painted skin
    texels: baked from a view, filled from the mirror side, from the procedural texture) and seconds per stage."""

    prompt: str
    seeds: tuple[int, ...]
    coverage: float
    mirrored: float
    procedural: float
    seconds: dict


class DiffusionTexturer:
    """Textures a neutral mesh with a depth-conditioned diffusion model prompted with the identity's demographics.

    `options` are `DiffusionTextureOptions` fields (model ids, steps, guidance, resolution, views, prompts, dtype);
    `device` defaults to this process's GPU (or the CPU); `pipeline` replaces loading (an already built diffusers
    ControlNet pipeline, e.g. for benchmarks).
    """

    def __init__(
        self, face_model: FaceModel, atlas_size: int = 512, device: str | None = None, pipeline=None,
        relief: bool = True, **options,
    ):
        self.options = DiffusionTextureOptions.from_dict(options)
        self.device = resolve_device(device)
        self.pipeline = pipeline if pipeline is not None else load_texture_pipeline(self.options, self.device)
        resolution = self.options.resolution
        self.procedural = ProceduralTexturer(face_model, max(atlas_size, resolution), relief=relief)
        self.views = tuple(View(f"texture{k}", yaw, pitch) for k, (yaw, pitch) in enumerate(self.options.views))
        self.renderer = FaceRenderer(face_model, image_size=resolution, eyelashes=False)  # the skin's own surface
        self.baker = TextureBaker(face_model, self.procedural.atlas.size, self.renderer)
        self.last_report: TextureReport | None = None

    def close(self) -> None:
        self.renderer.close()

    def __call__(
        self,
        appearance: Appearance,
        rng: np.random.Generator,
        *,
        neutral_vertices: np.ndarray | None = None,
        demographics: Demographics | None = None,
    ) -> SkinTexture:
        if neutral_vertices is None or demographics is None:
            raise TypeError("the diffusion texture backend needs the identity's neutral_vertices= and demographics=")
        seconds = {}
        started = time.perf_counter()
        base = self.procedural(appearance, rng)  # fills what no view sees; its non-skin colours are kept
        seeds = tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=len(self.views)))
        geometries = [self.baker.view_geometry(neutral_vertices, view) for view in self.views]
        seconds["procedural and depth"] = time.perf_counter() - started

        started = time.perf_counter()
        prompt = identity_prompt(demographics, self.options.prompt_suffix)
        images = self.generate(prompt, geometries, seeds)
        seconds["diffusion"] = time.perf_counter() - started

        started = time.perf_counter()
        color, weight = self.baker.project(neutral_vertices, list(zip(geometries, images)))
        albedo, coverage = self.baker.compose(color, weight, base.albedo)
        seconds["projection and fill"] = time.perf_counter() - started
        self.last_report = TextureReport(prompt=prompt, seeds=seeds, seconds=seconds, **coverage)
        return replace(base, albedo=albedo)  # the procedural texture with the projected portrait: relief, creases, lashes

    def generate(self, prompt: str, geometries, seeds) -> list[np.ndarray]:
        """One image per view (float32 0-1, (R, R, 3)), generated in one batch."""
        import torch
        from PIL import Image

        options, count = self.options, len(geometries)
        depth = [Image.fromarray(g.depth_image()) for g in geometries]
        if options.normal_controlnet_model:  # per batch item, one condition per ControlNet
            control = [[d, Image.fromarray(g.normal_image())] for d, g in zip(depth, geometries)]
        else:
            control = depth
        # CPU generators: the same noise whichever device runs the model
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        with torch.inference_mode():
            images = self.pipeline(
                prompt=[prompt] * count,
                negative_prompt=[options.negative_prompt] * count,
                image=control,
                height=options.resolution,
                width=options.resolution,
                num_inference_steps=options.steps,
                guidance_scale=options.guidance_scale,
                controlnet_conditioning_scale=options.controlnet_scale,
                generator=generators,
                output_type="np",
            ).images
        return [np.asarray(image, np.float32) for image in images]
