"""Generation throughput, where its time goes and what a row weighs, each figure beside its goal (issue 32).

    python scripts/bench_generate.py [--num-identities 8] [--workers 2] [--image-size 256] [--lossy webp:90]
                                     [--details] [--repeats 1] [--stage-identities 2] [--face-model PATH]

Arms, each one `generate_dataset` run over the same identities, timed wall-clock (sampling, texturing,
backgrounds, rendering, encoding, parquet writing; no card), alternated `--repeats` times after an untimed warm-up:
- `default`: passes off, lossless images (what the paper-scale extrapolation and the render-rate ratio use);
- `passes`: depth, normals and segmentation on (their throughput cost and their bytes per row);
- `lossy`: `--image-format LOSSY` (its bytes per row);
- `no-details` (with `--details`): appearance_detail=False, the cost of hair, lashes and skin relief.
Every worker times its renderer calls, so the raw render rate (images / (render seconds / workers)) comes from the
same meshes on the same machine at the same moment as the end-to-end rate. Bytes per row are the shards' file
sizes over their rows. The per-stage table comes from one process rendering `--stage-identities` identities itself
(`PainFaceGenerator.stage_seconds`, `render_seconds`) and writing their rows to parquet, per arm, in ms per image.

The machine may be shared: the load average before and after is printed with the figures, and so is the git commit
(with the number of uncommitted files under generation/, which others' work in progress can change).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

PAPER_IMAGES = 2500 * 11 * 3
GOALS = {"ratio": 0.80, "hours": 1.0, "row_kb": 110.0, "passes_cost": 0.20, "details": 0.80}


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "generation"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (f" + {len(dirty)} uncommitted files under generation/" if dirty else " (clean generation/)")


def bytes_per_row(folder: Path, rows: int) -> float:
    return sum(p.stat().st_size for p in (folder / "data").glob("*.parquet")) / rows


def stage_table(config, model_path: str, identities: int, scratch: Path) -> dict[str, float]:
    """ms per image of each stage, one process rendering `identities` identities and writing their rows."""
    from generation.face.model import FaceModel
    from generation.parquet import write_parquet
    from generation.pipeline import PainFaceGenerator, identity_spec
    from generation.writer import STILLS

    face_model = FaceModel.load(model_path)
    features = STILLS.features(config)
    labels = {name: feature for name, feature in features.items() if hasattr(feature, "str2int")}
    with PainFaceGenerator(config, face_model) as generator:
        generator(identity_spec(config, face_model, identities))  # warm-up: an identity outside the timed ones
        generator.render_seconds, generator.stage_seconds = 0.0, dict.fromkeys(generator.stage_seconds, 0.0)
        sampling = writing = 0.0
        images = 0
        start = time.perf_counter()
        for index in range(identities):
            t = time.perf_counter()
            spec = identity_spec(config, face_model, index)
            sampling += time.perf_counter() - t
            rows = generator(spec)
            t = time.perf_counter()
            for row in rows:
                row.update({name: feature.str2int(row[name]) for name, feature in labels.items()})
            write_parquet(scratch / f"stages-{index}.parquet", rows, features.arrow_schema)
            writing += time.perf_counter() - t
            images += len(rows)
        total = time.perf_counter() - start
        s = generator.stage_seconds
    stages = {
        "sampling (identity_spec)": sampling,
        "rig, hair, cameras": s["identity"] - s["texture"],
        "texture": s["texture"],
        "backgrounds": s["background"],
        "posing (expressions, wrinkles)": s["posing"],
        "render passes (RGB, id pass, ground truth)": generator.render_seconds,
        "ground-truth columns, pass images": s["ground_truth"],
        "encoding (image columns)": s["encoding"],
        "writing (parquet)": writing,
    }
    stages["other"] = total - sum(stages.values())
    stages["total"] = total
    return {name: seconds / images * 1e3 for name, seconds in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=8)
    parser.add_argument("--expressions-per-identity", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--msaa", action="store_true")
    parser.add_argument("--lossy", default="webp:90", help="the lossy arm's --image-format")
    parser.add_argument("--details", action="store_true", help="also the appearance-details-off arm")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each arm, alternating their order")
    parser.add_argument("--stage-identities", type=int, default=2, help="identities of the per-stage table (0: none)")
    parser.add_argument("--face-model")
    parser.add_argument("--keep", type=Path, help="keep the first default-arm dataset here")
    args = parser.parse_args()

    from generation.columns import PASSES
    from generation.config import GenerationConfig
    from generation.face.assets import resolve_face_model
    from generation.writer import generate_dataset

    model_path = str(resolve_face_model(args.face_model))
    base = GenerationConfig(
        num_identities=args.num_identities, expressions_per_identity=args.expressions_per_identity,
        image_size=args.image_size, msaa=args.msaa,
        identities_per_shard=max(1, min(25, args.num_identities // (2 * args.workers))),
    )
    arms = {"default": base, "passes": replace(base, passes=PASSES), "lossy": replace(base, image_format=args.lossy)}
    if args.details:
        arms["no-details"] = replace(base, appearance_detail=False)
    per_identity = len(base.views) * (base.expressions_per_identity + 1)
    load_before = os.getloadavg()
    print(f"commit {git_commit()}; {os.cpu_count()} CPUs, load average {load_before[0]:.1f} at the start "
          "(the machine may be shared with other jobs: rates are lower bounds)")
    print(f"{args.num_identities} identities x {per_identity} images = {args.num_identities * per_identity} images per "
          f"arm, {args.image_size} px, msaa {'on' if base.msaa else 'off'}, {args.workers} worker processes, default "
          f"images {base.image_format}, lossy arm {args.lossy}")
    scratch = Path(tempfile.mkdtemp(prefix="pain3d-bench-"))
    try:
        # an untimed warm-up of each arm: the first run also reads the libraries and the face model from disk
        for name, config in arms.items():
            warm = replace(config, num_identities=2, identities_per_shard=1)
            generate_dataset(scratch / f"warm-up-{name}", warm, model_path, workers=args.workers, progress=False)
        rates: dict[str, list[float]] = {name: [] for name in arms}
        raw: dict[str, list[float]] = {name: [] for name in arms}
        row_bytes: dict[str, float] = {}
        for repeat in range(args.repeats):
            for name in list(arms) if repeat % 2 == 0 else list(arms)[::-1]:
                keep = args.keep if (args.keep and name == "default" and repeat == 0) else None
                folder = keep or scratch / f"{name}-{repeat}"
                start = time.perf_counter()
                summary = generate_dataset(folder, arms[name], model_path, workers=args.workers, overwrite=True,
                                           progress=False)
                wall = time.perf_counter() - start
                rates[name].append(summary["rows"] / wall)
                raw[name].append(summary["rows"] / (summary["render_seconds"] / args.workers))
                row_bytes[name] = bytes_per_row(folder, summary["rows"])
                if keep is None:
                    shutil.rmtree(folder, ignore_errors=True)
        stages = {name: stage_table(arms[name], model_path, args.stage_identities, scratch)
                  for name in ("default", "passes")} if args.stage_identities else {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()
    mean = {name: sum(values) / len(values) for name, values in rates.items()}
    raw_rate = sum(raw["default"]) / len(raw["default"])

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"\n{'throughput (images/s)':<48}{'end-to-end':>11}{'raw render':>11}   runs")
    for name in arms:
        print(f"{name:<48}{mean[name]:>11.2f}{sum(raw[name]) / len(raw[name]):>11.2f}   "
              + ", ".join(f"{r:.2f}" for r in rates[name]))
    ratio = mean["default"] / raw_rate
    hours = PAPER_IMAGES / mean["default"] / 3600
    cost = 1 - mean["passes"] / mean["default"]
    print(f"\n{'figure':<48}{'value':>11}   goal")
    print(f"{'end-to-end / raw render rate (default)':<48}{ratio:>10.0%}   >= {GOALS['ratio']:.0%}: "
          f"{verdict(ratio >= GOALS['ratio'])}")
    print(f"{'paper scale, 82,500 images (default)':<48}{hours:>9.2f} h   <= {GOALS['hours']:.1f} h on this machine: "
          f"{verdict(hours <= GOALS['hours'])}")
    print(f"{'throughput cost of all three passes':<48}{cost:>10.0%}   <= {GOALS['passes_cost']:.0%}: "
          f"{verdict(cost <= GOALS['passes_cost'])}")
    if args.details:
        details = mean["default"] / mean["no-details"]
        print(f"{'details on / off':<48}{details:>10.0%}   >= {GOALS['details']:.0%}: "
              f"{verdict(details >= GOALS['details'])}")
    print(f"{'bytes per row, default (' + base.image_format + ')':<48}{row_bytes['default'] / 1e3:>8.1f} kB   "
          f"<= {GOALS['row_kb']:.0f} kB, lossless: {verdict(row_bytes['default'] / 1e3 <= GOALS['row_kb'])}")
    print(f"{'bytes per row, lossy (' + args.lossy + ')':<48}{row_bytes['lossy'] / 1e3:>8.1f} kB   (no goal)")
    print(f"{'bytes per row, all passes on':<48}{row_bytes['passes'] / 1e3:>8.1f} kB   (no goal)")
    print(f"{'paper scale on disk (default)':<48}{row_bytes['default'] * PAPER_IMAGES / 1e9:>8.1f} GB")
    if stages:
        print(f"\n{'stage (one process, ms per image)':<48}{'default':>9}{'passes':>9}")
        for stage in stages["default"]:
            print(f"{stage:<48}{stages['default'][stage]:>9.1f}{stages['passes'][stage]:>9.1f}")
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak memory {peak_children:.0f} MB per worker process; load average {load_after[0]:.1f} at the end")


if __name__ == "__main__":
    main()
