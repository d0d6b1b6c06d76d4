"""End-to-end generation throughput against the raw render rate of the same meshes, in one run.

    python scripts/bench_generate.py [--num-identities 24] [--workers 2] [--image-size 256] [--face-model PATH]

1. raw: the same identities' meshes rendered (RGB pass + heatmap pass per image, neutral without heatmap) by
   `--workers` processes, timing only the renderer calls;
2. end-to-end: `generate_dataset` into a fresh folder (sampling, texturing, backgrounds, rendering, PNG encoding,
   parquet writing, preview and card), wall-clock.
Prints images/s of both, their ratio, the extrapolated time for the paper's 82,500 images, peak memory and size.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

PAPER_IMAGES = 2500 * 11 * 3
_STATE: dict = {}


def _init(config_dict: dict, model_path: str) -> None:
    from generation import FaceModel
    from generation.pipeline import GenerationConfig, PainFaceGenerator

    config = GenerationConfig.from_dict(config_dict)
    model = FaceModel.load(model_path)
    _STATE.update(config=config, model=model, generator=PainFaceGenerator(config, model))


def _raw_render(index: int) -> tuple[int, float]:
    """Render one identity's images exactly as the generator does, timing only the renderer."""
    from generation.backgrounds import sample_background
    from generation.pipeline import identity_spec
    from generation.render import displacement_mm

    config, model, generator = _STATE["config"], _STATE["model"], _STATE["generator"]
    spec = identity_spec(config, model, index)
    texture = generator.texturer(spec.appearance, np.random.default_rng(index))
    neutral, pains = generator.meshes(spec)
    jobs = [(neutral, None)] + [(p, displacement_mm(p, neutral)) for p in pains]
    background = sample_background(config.image_size, np.random.default_rng(index))
    images, start = 0, time.perf_counter()
    for view in config.views:
        for vertices, displacement in jobs:
            generator.renderer.render(
                vertices, view, displacement=displacement, lighting=spec.lighting, texture=texture, background=background
            )
            images += 1
    return images, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=24)
    parser.add_argument("--expressions-per-identity", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--msaa", action="store_true")
    parser.add_argument("--face-model")
    parser.add_argument("--keep", type=Path, help="write the end-to-end dataset here instead of a temp folder")
    args = parser.parse_args()

    from generation.assets import resolve_face_model
    from generation.dataset_writer import generate_dataset
    from generation.pipeline import GenerationConfig

    model_path = str(resolve_face_model(args.face_model))
    config = GenerationConfig(
        num_identities=args.num_identities,
        expressions_per_identity=args.expressions_per_identity,
        image_size=args.image_size,
        msaa=args.msaa,
        identities_per_shard=max(1, args.num_identities // (2 * args.workers)),
    )
    per_identity = len(config.views) * (config.expressions_per_identity + 1)
    print(
        f"{args.num_identities} identities x {config.expressions_per_identity + 1} expressions x {len(config.views)} "
        f"views = {args.num_identities * per_identity} images, {args.image_size} px, msaa {'on' if config.msaa else 'off'}, "
        f"{args.workers} worker processes"
    )

    # 1. raw render rate of the same meshes
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers, initializer=_init, initargs=(config.to_dict(), model_path)) as pool:
        pool.map(_raw_render, range(min(args.workers, args.num_identities)))  # warm-up: contexts, shaders, atlas
        results = pool.map(_raw_render, range(args.num_identities), chunksize=1)
    images = sum(n for n, _ in results)
    raw_rate = images / (sum(seconds for _, seconds in results) / args.workers)

    # 2. end-to-end generation
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pain3d-bench-")) / "dataset"
    start = time.perf_counter()
    summary = generate_dataset(folder, config, model_path, workers=args.workers, overwrite=True, progress=False)
    wall = time.perf_counter() - start
    end_to_end = summary["rows"] / wall
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{'':<34}{'images/s':>10}")
    print(f"{'raw render (RGB + heatmap passes)':<34}{raw_rate:>10.2f}")
    print(f"{'end-to-end generate_dataset':<34}{end_to_end:>10.2f}   ({summary['rows']} images in {wall:.1f} s)")
    print(f"end-to-end / raw render: {end_to_end / raw_rate:.0%}   (goal >= 70%)")
    print(
        f"paper scale (82,500 images): {PAPER_IMAGES / end_to_end / 3600:.2f} h at this rate "
        f"(goal < 2 h = 11.5 images/s)"
    )
    print(f"peak memory: {peak_children:.0f} MB per worker process, {peak_self:.0f} MB main process")
    print(f"output: {size / 1e6:.1f} MB ({size / summary['rows'] / 1e3:.1f} kB per image; "
          f"{size / summary['rows'] * PAPER_IMAGES / 1e9:.1f} GB at paper scale)")
    if not args.keep:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
