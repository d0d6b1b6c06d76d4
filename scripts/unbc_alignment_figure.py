"""The alignment picture of the README: a frame in the UNBC-McMaster layout before and after alignment, beside a
synthetic render, with the template's eye and mouth anchors marked.

    python scripts/unbc_alignment_figure.py --output docs/unbc_alignment.png

Made from test data: a few identities from `pain3d generate` written in the archive layout by
`dataset_builder.write_unbc_layout` (renders placed in 320 x 240 frames with a head pose), read back by
`load_unbc` raw and with `align=True`. The archive itself is never needed (nor shown: it is not ours to publish).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/unbc_alignment.png"))
    parser.add_argument("--face-model", help="ICT-FaceKit archive or folder (default: PAIN3D_FACE_MODEL / cache)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import datasets
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dataset_builder import load_unbc, write_unbc_layout
    from dataset_builder.alignment import TEMPLATE, anchor_points

    with tempfile.TemporaryDirectory() as scratch:
        renders = Path(scratch) / "renders"
        command = [sys.executable, "-m", "pain3d", "generate", "-o", str(renders), "--num-identities", "2",
                   "--expressions-per-identity", "3", "--views", "frontal", "--image-size", "256", "--seed",
                   str(args.seed), "--quiet"] + (["--face-model", args.face_model] if args.face_model else [])
        subprocess.run(command, check=True)
        rows = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in renders.glob("data/*.parquet")),
                                     split="train", cache_dir=str(Path(scratch) / "cache"))
        rows = [dict(row) for row in rows]
        root = Path(scratch) / "UNBC-McMaster"
        write_unbc_layout([row for row in rows if row["identity_id"] == rows[0]["identity_id"]], root, seed=args.seed)
        datasets.config.HF_DATASETS_CACHE = Path(scratch) / "cache"
        raw = load_unbc(root, progress=False)
        aligned = load_unbc(root, align=True, image_size=256, progress=False)
        pick = int(np.argmax(raw["pspi"]))  # the strongest pain frame
        frame, after = raw[pick], aligned[pick]
        synthetic = next(row for row in rows if row["identity_id"] != rows[0]["identity_id"] and row["pspi"] > 0)

        figure, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [320 / 240, 1, 1]})
        panels = [
            (frame["image"], frame["landmarks_aam"], None,
             f"archive layout: {frame['sample_id']}.png\n320 x 240, 66 AAM landmarks (PSPI {frame['pspi']:g})"),
            (after["image"], after["landmarks_aam"], TEMPLATE * 256, "load_unbc(align=True)\n256 x 256"),
            (synthetic["image"], synthetic["landmarks_2d"], TEMPLATE * 256,
             f"3DPain render (another identity)\n256 x 256 (PSPI {synthetic['pspi']:g})"),
        ]
        for axis, (image, landmarks, template, title) in zip(axes, panels):
            axis.imshow(image)
            points = np.asarray(landmarks)
            axis.scatter(points[:, 0] - 0.5, points[:, 1] - 0.5, s=3, c="#00e5ff", linewidths=0)
            anchors = anchor_points(points)
            axis.scatter(anchors[:, 0] - 0.5, anchors[:, 1] - 0.5, s=14, c="#00e5ff", marker="o", linewidths=0)
            if template is not None:
                axis.scatter(template[:, 0] - 0.5, template[:, 1] - 0.5, s=70, marker="+", c="#ff3030", linewidths=1.4)
            axis.set_title(title, fontsize=9)
            axis.axis("off")
        figure.suptitle("Eye centres and mouth corners (blue) mapped onto the render template (red +)", fontsize=10)
        figure.tight_layout(rect=(0, 0, 1, 0.92))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.output, dpi=90)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB)")
    return args.output


if __name__ == "__main__":
    main()
