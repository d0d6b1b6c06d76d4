"""Renders per second of the face mesh: RGB and heatmap passes, 256 and 512 px, multisampling on and off.

    python scripts/bench_render.py [--face-model PATH] [--frames 40] [--sizes 256 512]

The RGB pass is pyrender's shaded render (PBR, vertex colours, RGBA read-back); the heatmap pass is the flat
triangle-id render plus the numpy barycentric interpolation of per-vertex millimetres. Each frame poses a new
expression so buffer uploads are included, as in generation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from generation import DEFAULT_VIEWS, FaceModel, FaceRenderer, displacement_mm, pose_face, sample_identity
from generation.face.assets import resolve_face_model


def rate(fn, frames: int) -> float:
    fn(0)  # warm-up: shader compilation, framebuffer creation
    start = time.perf_counter()
    for k in range(frames):
        fn(k)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--face-model")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()

    model = FaceModel.load(resolve_face_model(args.face_model))
    identity = sample_identity(np.random.default_rng(0))
    neutral = pose_face(model, identity)
    rng = np.random.default_rng(1)
    poses = []
    for _ in range(8):
        aus = {"AU4": rng.integers(0, 6), "AU6": rng.integers(0, 6), "AU7": rng.integers(0, 6),
               "AU9": rng.integers(0, 6), "AU10": rng.integers(0, 6), "AU43": rng.integers(0, 2)}
        posed = pose_face(model, identity, aus)
        poses.append((posed, displacement_mm(posed, neutral)))
    views = DEFAULT_VIEWS

    print(f"face mesh: {model.num_vertices} vertices; {args.frames} frames per cell; 3 views cycled")
    print(f"{'size':>5} {'msaa':>5} | {'RGB pass':>10} {'heatmap pass':>13} {'RGB+heatmap':>12}  (renders/s)")
    for size in args.sizes:
        for msaa in (True, False):
            with FaceRenderer(model, image_size=size, msaa=msaa) as renderer:
                def rgb(k):
                    renderer.render_rgb(poses[k % 8][0], views[k % 3])

                def heat(k):
                    posed, values = poses[k % 8]
                    ids = renderer.render_ids(posed, views[k % 3])
                    renderer.interpolate(ids, posed, values, views[k % 3])

                def both(k):
                    renderer.render(poses[k % 8][0], views[k % 3], displacement=poses[k % 8][1])

                cells = [rate(fn, args.frames) for fn in (rgb, heat, both)]
            print(f"{size:>5} {'on' if msaa else 'off':>5} | {cells[0]:>10.1f} {cells[1]:>13.1f} {cells[2]:>12.1f}")
    posing = rate(lambda k: pose_face(model, identity, {"AU4": k % 6, "AU10": 3}), args.frames)
    print(f"posing the mesh (numpy, identity + AUs): {posing:.0f} meshes/s")


if __name__ == "__main__":
    main()
