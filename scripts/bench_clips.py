"""Clip throughput, size and quality against the stills, in one run on the same identities (issue 31's goals).

    python scripts/bench_clips.py [--num-identities 2] [--seconds 4] [--fps 25] [--image-size 256]
                                  [--expressions-per-identity 4] [--workers 1] [--face-model PATH]

Both writers run end to end into temporary folders (sampling, texturing, backgrounds, rendering, encoding, parquet,
manifest; no card): `pain3d generate` of identities 0..N-1 (frontal view, the clips' view, K expressions each)
and `pain3d clips` of the same identities (one clip each, default CRF). Prints clip frames/s against still
images/s (goal >= 1.5x: no neutral per row, identity set-up and texture amortised over many frames), the video's
bytes per frame (goal <= 8 kB at 256 px) and the PSNR of the decoded video against the lossless render of the same
frames (goal >= 40 dB), with the commit that was measured.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

GOALS = {"speed": 1.5, "bytes_per_frame": 8000, "psnr": 40.0}


def _commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "generation", "scripts/bench_clips.py"],
                               cwd=here, capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    return sha.strip() + (" (generation/ has uncommitted changes)" if dirty.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each identity's one clip")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--expressions-per-identity", type=int, default=4, help="the stills' pain images per identity")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--face-model")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from generation.clips.config import ClipConfig
    from generation.clips.rows import ClipRows
    from generation.clips.video import decode_video, psnr
    from generation.clips.writer import generate_clips
    from generation.config import GenerationConfig
    from generation.face.assets import load_face_model, resolve_face_model
    from generation.writer import generate_dataset

    model_path = resolve_face_model(args.face_model)
    clip_config = ClipConfig(num_identities=args.num_identities, clips_per_identity=1, seconds=args.seconds,
                             fps=args.fps, image_size=args.image_size, seed=args.seed,
                             identities_per_shard=args.num_identities)
    stills_config = GenerationConfig(
        num_identities=args.num_identities, expressions_per_identity=args.expressions_per_identity,
        views=clip_config.views, image_size=args.image_size, seed=args.seed, identities_per_shard=args.num_identities,
    )
    print(f"commit {_commit()}; {args.num_identities} identities, {args.image_size} px, frontal, "
          f"{args.workers} worker(s), seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        stills = generate_dataset(Path(tmp) / "stills", stills_config, model_path, workers=args.workers,
                                  progress=False)
        clips = generate_clips(Path(tmp) / "clips", clip_config, model_path, workers=args.workers, progress=False)
        videos = {row["clip_id"]: (row["num_frames"], row["video"]["bytes"])
                  for path in sorted((Path(tmp) / "clips" / "data").glob("*.parquet"))
                  for row in pq.read_table(path, columns=["clip_id", "num_frames", "video"]).to_pylist()}
    still_rate = stills["rows"] / stills["seconds"]
    clip_rate = clips["frames_per_second"]
    bytes_per_frame = sum(len(v) for _, v in videos.values()) / sum(n for n, _ in videos.values())

    # the first identity's clip again, lossless, against its stored video (time not counted above)
    producer = ClipRows(clip_config, load_face_model(model_path, progress=False))
    started = time.perf_counter()
    identity = producer.generator.identity(0)
    lossless = producer.frames(identity, producer.dynamics(0, 0)).frames
    render_seconds = time.perf_counter() - started
    producer.close()
    num_frames, video = videos[f"{identity.spec.identity_id}_c00_{clip_config.views[0].name}"]
    quality = psnr(lossless, decode_video(video, num_frames))

    print(f"stills: {stills['rows']} images ({args.expressions_per_identity + 1} per identity, neutral included) in "
          f"{stills['seconds']:.1f} s = {still_rate:.2f} images/s")
    print(f"clips:  {clips['frames']} frames ({args.seconds:g} s at {args.fps} fps per identity) in "
          f"{clips['seconds']:.1f} s = {clip_rate:.2f} frames/s (one clip re-rendered losslessly, "
          f"identity set-up included, no encoding: {len(lossless) / render_seconds:.2f} frames/s)")
    print()
    print("| figure | measured | goal | met |")
    print("| --- | --- | --- | --- |")
    ratio = clip_rate / still_rate
    rows = [
        ("clip frames/s / still images/s", f"{ratio:.2f}x", f">= {GOALS['speed']}x", ratio >= GOALS["speed"]),
        (f"bytes per frame (CRF {clip_config.crf}, {args.image_size} px)", f"{bytes_per_frame:.0f}",
         f"<= {GOALS['bytes_per_frame']} at 256 px", bytes_per_frame <= GOALS["bytes_per_frame"]),
        ("PSNR vs the lossless render", f"{quality:.2f} dB", f">= {GOALS['psnr']:g} dB",
         quality >= GOALS["psnr"]),
    ]
    for name, measured, goal, met in rows:
        print(f"| {name} | {measured} | {goal} | {'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
