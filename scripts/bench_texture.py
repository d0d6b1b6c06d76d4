"""Seconds per identity of the texture backends, measured in one run on the same identities.

    python scripts/bench_texture.py [--num-identities 6] [--resolution 64] [--steps 2] [--threads 1]
    python scripts/bench_texture.py --full-size [--resolution 512] [--steps 20] [--device cuda] [--dtype auto]

Default: the `procedural` backend against the `diffusion` backend with a tiny random-weight SD 1.5 + depth
ControlNet saved to a temporary folder and loaded with `from_pretrained`, exactly as real weights are. A diffusion
texture's time covers the procedural base and the depth render, the diffusion, and the projection into the atlas
with the fill of unseen texels; model loading is reported apart.

`--full-size`: SD 1.5-shaped random weights (UNet 320-640-1280-1280 and its ControlNet, CLIP ViT-L text encoder,
the SD VAE) built from configs in memory, no download, on `--device` (default: cuda if available): reports
denoising steps per second at `--resolution` (classifier-free guidance on, so each step runs UNet and ControlNet
on a batch of two) and seconds per identity of the whole texture step. Random weights make noise images; the
timings are those of real weights of the same shapes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The random-weight pipelines are a test helper (tests/tiny_diffusion.py): found as the tests find it, from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=6)
    parser.add_argument("--resolution", type=int, help="generated image size (default 64 tiny, 512 full size)")
    parser.add_argument("--steps", type=int, help="denoising steps (default 2 tiny, 20 full size)")
    parser.add_argument("--views", default="0:0", help="texture views YAW:PITCH,... (default frontal only)")
    parser.add_argument("--full-size", action="store_true", help="SD 1.5-shaped random weights; steps/s")
    parser.add_argument("--device", help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--atlas-size", type=int, default=256)
    parser.add_argument("--face-model")
    parser.add_argument("--sheet", type=Path, help="also save the stages of the first identity as a PNG sheet")
    args = parser.parse_args()

    import torch

    from pain3d.cli import parse_texture_views
    from generation.diffusion_models import resolve_device, resolve_dtype
    from generation.face.assets import load_face_model
    from generation.pipeline import GenerationConfig, PainFaceGenerator
    from generation.rng import stream
    from generation.texture import create_texturer
    from tiny_diffusion import save_tiny_texture_models, tiny_texture_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    resolution = args.resolution or (512 if args.full_size else 64)
    steps = args.steps or (20 if args.full_size else 2)
    device = resolve_device(args.device)
    model = load_face_model(args.face_model)
    config = GenerationConfig(num_identities=args.num_identities, image_size=args.atlas_size)
    with PainFaceGenerator(config, model) as generator:  # the one identity path: each identity's neutral head
        identities = [(built.spec, built.neutral) for built in map(generator.identity, range(args.num_identities))]
    options = dict(steps=steps, resolution=resolution, views=parse_texture_views(args.views), dtype=args.dtype)
    print(
        f"{args.num_identities} identities, atlas {args.atlas_size} px, diffusion {resolution} px, {steps} steps, "
        f"views {args.views}, device {device}, torch threads {torch.get_num_threads()}"
    )

    def run(texturer, label: str) -> list[dict]:
        """Texture every identity once; print the median seconds; return the per-stage seconds (diffusion)."""
        seconds, stages = [], []
        for spec, neutral in identities:
            rng = stream("texture", config.seed, spec.index)
            started = time.perf_counter()
            texturer(spec.appearance, rng, neutral_vertices=neutral, demographics=spec.demographics)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - started)
            report = getattr(texturer, "last_report", None)
            if report is not None:
                stages.append(report.seconds)
        print(f"{label:<48}{statistics.median(seconds):>8.3f} s/identity (median of {len(seconds)}; "
              f"first {seconds[0]:.3f} s)")
        return stages

    procedural = create_texturer("procedural", model, atlas_size=args.atlas_size)
    run(procedural, "procedural")

    started = time.perf_counter()
    if args.full_size:
        dtype = resolve_dtype(args.dtype, device)
        pipeline = tiny_texture_pipeline(full_size=True).to(device)
        if dtype != torch.float32:
            pipeline = pipeline.to(dtype)
        pipeline.set_progress_bar_config(disable=True)
        texturer = create_texturer(
            "diffusion", model, atlas_size=args.atlas_size, device=device, pipeline=pipeline, **options
        )
        label = "diffusion (SD 1.5-shaped random weights)"
    else:
        folder = Path(tempfile.mkdtemp(prefix="pain3d-tiny-"))
        texturer = create_texturer(
            "diffusion", model, atlas_size=args.atlas_size, device=device, **save_tiny_texture_models(folder), **options
        )
        label = "diffusion (tiny random-weight SD 1.5 + depth)"
    print(f"{'diffusion backend set-up (build/load, atlas)':<48}{time.perf_counter() - started:>8.3f} s once")
    stages = run(texturer, label)
    for stage in stages[0]:
        print(f"  {stage:<46}{statistics.median(s[stage] for s in stages):>8.3f} s/identity")
    print(f"  UV coverage of the skin texels: {texturer.last_report.coverage:.1%} baked, "
          f"{texturer.last_report.mirrored:.1%} mirrored, {texturer.last_report.procedural:.1%} procedural")

    if args.sheet:
        stage_sheet(texturer, model, *identities[0], args.sheet)
        print(f"wrote {args.sheet}")

    if args.full_size:
        geometry = texturer.baker.view_geometry(identities[0][1], texturer.views[0])
        from PIL import Image

        times = []

        def tick(pipe, step, timestep, kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            return kwargs

        with torch.inference_mode():
            pipeline("a photo of a face", image=Image.fromarray(geometry.depth_image()), height=resolution,
                     width=resolution, num_inference_steps=max(steps, 3), guidance_scale=7.5,
                     generator=torch.Generator("cpu").manual_seed(0), output_type="latent", callback_on_step_end=tick)
        rate = (len(times) - 1) / (times[-1] - times[0])
        print(f"denoising: {rate:.2f} steps/s at {resolution} px (UNet + depth ControlNet, guidance batch 2, "
              f"{pipeline.unet.dtype}, {device})")
    texturer.close()


def stage_sheet(texturer, model, spec, neutral, path: Path) -> None:
    """Depth condition, generated image, UV coverage, baked atlas and renders of one identity (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from generation.render import FaceRenderer
    from generation.rng import stream
    from generation.views import DEFAULT_VIEWS, View

    rng = stream("texture", 0, spec.index)
    texture = texturer(spec.appearance, rng, neutral_vertices=neutral, demographics=spec.demographics)
    report = texturer.last_report
    geometry = texturer.baker.view_geometry(neutral, texturer.views[0])
    image = texturer.generate(report.prompt, [geometry], report.seeds[:1])[0]  # the first view's image again
    _, weight = texturer.baker.project(neutral, [(geometry, image)])
    with FaceRenderer(model, image_size=256) as renderer:
        renders = [renderer.render(neutral, view, texture=texture, background=(128, 128, 128)).image
                   for view in (DEFAULT_VIEWS[0], View("left", 35.0, 5.0))]
    panels = [
        ("depth condition", geometry.depth_image()), ("generated image", image),
        ("UV coverage (white baked)", texturer.baker.coverage_map(weight)), ("baked texture (UV atlas)", texture.albedo),
        ("render, frontal", renders[0]), ("render, yaw 35", renders[1]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4),
                             gridspec_kw={"width_ratios": [1, 1, 2, 2, 1, 1]})
    for ax, (title, panel) in zip(axes, panels):
        ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(report.prompt[:110] + " ...", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
