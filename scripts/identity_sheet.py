"""Sheets of who the faces are: the neutral frontal images of the first identities of one or more generated dataset
folders, labelled with their intended age, gender and ethnicity, stacked with a title per folder.

    python scripts/identity_sheet.py "before=OLD_DATASET" "after=NEW_DATASET" --output docs/faces_before_after.png
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from dataset_builder.preview import identity_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="TITLE=FOLDER (or FOLDER) of a generated dataset")
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--count", type=int, default=24, help="identities per dataset (default 24)")
    parser.add_argument("--view", default="frontal")
    parser.add_argument("--tile", type=int, default=128, help="pixels per face (default 128)")
    parser.add_argument("--min-age", type=int, default=0, help="only identities of at least this intended age")
    args = parser.parse_args()

    parts = []
    for spec in args.datasets:
        title, _, folder = spec.rpartition("=")
        sheet = identity_sheet(folder, count=args.count, view=args.view, tile=args.tile, min_age=args.min_age)
        if title:
            header = Image.new("RGB", (sheet.width, 22), (255, 255, 255))
            ImageDraw.Draw(header).text((6, 5), title, fill=(0, 0, 0))
            parts.append(header)
        parts.append(sheet)
    out = Image.new("RGB", (max(p.width for p in parts), sum(p.height for p in parts)), (255, 255, 255))
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height
    out.save(args.output, optimize=True, quality=88)  # quality: for .jpg outputs
    print(f"wrote {args.output} ({out.width}x{out.height})")


if __name__ == "__main__":
    main()
