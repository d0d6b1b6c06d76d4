"""End-to-end generation throughput against the raw render rate of the same meshes, measured in the same run, with
the appearance details (hair, head coverings and eyelashes as geometry, the skin relief) on and off.

    python scripts/bench_generate.py [--num-identities 40] [--workers 2] [--image-size 256] [--face-model PATH]

One `generate_dataset` run (sampling, texturing, backgrounds, rendering, PNG encoding, parquet writing, preview
and card) is timed wall-clock, while every worker also times the renderer calls it makes (the RGB pass and the
heatmap pass of each image). Both rates therefore come from the same meshes on the same machine at the same
moment: raw render rate = images / (render seconds / workers). Prints both, their ratio, the extrapolated time
for the paper's 82,500 images, peak memory and output size. The same dataset is then generated again with
`appearance_detail=False` (the same identities without hair geometry, eyelashes, skin relief or sheen), alternating
the two arms `--repeats` times after an untimed warm-up of both, and the details' cost is printed as the ratio of
the two end-to-end rates (goal >= 80%).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

PAPER_IMAGES = 2500 * 11 * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=40)
    parser.add_argument("--expressions-per-identity", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--msaa", action="store_true")
    parser.add_argument("--face-model")
    parser.add_argument("--keep", type=Path, help="keep the first details-on dataset here (and report its size)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternating their order")
    args = parser.parse_args()

    from generation.face.assets import resolve_face_model
    from generation.writer import generate_dataset
    from generation.pipeline import GenerationConfig

    model_path = str(resolve_face_model(args.face_model))
    configs = {
        detail: GenerationConfig(
            num_identities=args.num_identities,
            expressions_per_identity=args.expressions_per_identity,
            image_size=args.image_size,
            msaa=args.msaa,
            identities_per_shard=max(1, min(25, args.num_identities // (2 * args.workers))),
            appearance_detail=detail,
        )
        for detail in (True, False)
    }
    config = configs[True]
    per_identity = len(config.views) * (config.expressions_per_identity + 1)
    print(
        f"{args.num_identities} identities x {config.expressions_per_identity + 1} expressions x {len(config.views)} "
        f"views = {args.num_identities * per_identity} images, {args.image_size} px, "
        f"msaa {'on' if config.msaa else 'off (feathered silhouettes)'}, {args.workers} worker processes"
    )
    scratch = Path(tempfile.mkdtemp(prefix="pain3d-bench-"))
    # An untimed warm-up of both arms (2 identities each) first: the first run on a machine also pays for reading
    # the libraries and the face model from disk, which would otherwise fall on the details-on arm alone.
    for detail in (True, False):
        warm = replace(configs[detail], num_identities=2, identities_per_shard=1)
        generate_dataset(scratch / f"warm-up-{detail}", warm, model_path, workers=args.workers, progress=False)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(args.repeats):
        for detail in (True, False) if repeat % 2 == 0 else (False, True):
            folder = args.keep if (args.keep and detail and repeat == 0) else scratch / f"dataset-{detail}-{repeat}"
            start = time.perf_counter()
            summary = generate_dataset(folder, configs[detail], model_path, workers=args.workers, overwrite=True,
                                       progress=False)
            wall = time.perf_counter() - start
            images = summary["rows"]
            rates[detail].append(images / wall)
            if detail and repeat == 0:
                raw = images / (summary["render_seconds"] / args.workers)
                first = (folder, images, wall)
            if folder != args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    folder, images, wall = first
    end_to_end = images / wall
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{'':<52}{'images/s':>10}")
    print(f"{'raw render of the same meshes (RGB + heatmap)':<52}{raw:>10.2f}")
    print(f"{'end-to-end generate_dataset (wall clock)':<52}{end_to_end:>10.2f}   ({images} images in {wall:.1f} s)")
    print(f"end-to-end / raw render: {end_to_end / raw:.0%}   (goal >= 70%)")
    on, off = (sum(rates[d]) / len(rates[d]) for d in (True, False))
    print(f"{'end-to-end, appearance details on (mean of runs)':<52}{on:>10.2f}   runs: "
          + ", ".join(f"{r:.2f}" for r in rates[True]))
    print(f"{'end-to-end, appearance details off (mean of runs)':<52}{off:>10.2f}   runs: "
          + ", ".join(f"{r:.2f}" for r in rates[False]))
    print(f"details on / off: {on / off:.0%}   (goal >= 80%)")
    print(f"paper scale (82,500 images): {PAPER_IMAGES / on / 3600:.2f} h at the details-on rate on this machine")
    print(f"peak memory: {peak_children:.0f} MB per worker process, {peak_self:.0f} MB main process")
    if args.keep:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(
            f"output: {size / 1e6:.1f} MB ({size / images / 1e3:.1f} kB per image; "
            f"{size / images * PAPER_IMAGES / 1e9:.1f} GB at paper scale)"
        )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
