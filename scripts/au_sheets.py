"""Render one contact sheet per pain AU (at full intensity) plus a combined high-PSPI sheet into docs/.

    python scripts/au_sheets.py --output docs [--face-model PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generation import PAIN_AUS, ACTION_UNITS, FaceModel, FaceRenderer
from generation.face.assets import resolve_face_model
from generation.preview import render_preview_sheet

HIGH_PSPI = {"AU4": 5, "AU6": 4, "AU7": 5, "AU9": 3, "AU10": 4, "AU43": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("docs"))
    parser.add_argument("--face-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()

    model = FaceModel.load(resolve_face_model(args.face_model))
    with FaceRenderer(model, image_size=args.image_size) as renderer:
        for name in PAIN_AUS:
            au = ACTION_UNITS[name]
            out = render_preview_sheet(
                model, {name: au.max_intensity}, args.output / f"au_{name}.png", seed=args.seed,
                title=f"{name} ({au.description}) at full intensity", renderer=renderer,
            )
            print("wrote", out)
        out = render_preview_sheet(
            model, {"AU9": 5, "AU10": 5}, args.output / "au_AU9_AU10.png", seed=args.seed,
            title="AU9 + AU10 at full intensity (mouthUpperUp eased under AU9)", renderer=renderer,
        )
        print("wrote", out)
        out = render_preview_sheet(
            model, HIGH_PSPI, args.output / "pain_high_pspi.png", seed=args.seed + 1,
            title="combined high-PSPI expression", renderer=renderer,
        )
        print("wrote", out)


if __name__ == "__main__":
    main()
