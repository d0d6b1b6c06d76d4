"""How old the audit's age model reads one age range of identities, per view, and how alike its face recogniser finds
them: the neutral images of the first N identities of at least --min-age (and at most --max-age) intended years,
frontal and both side views, rendered through the one identity path.

    python scripts/probe_age.py [--num-identities 24] [--seed 0] [--min-age 80] [--max-age 90] [--sheet ages.png]

Prints one line: the perceived median age per view and overall, the share of different-identity frontal pairs under
the recogniser's 0.6 threshold, and how many frontal faces are read as their intended gender. A quicker, narrower
look than `pain3d audit` (no dataset is written), for trying a change to how faces age.
Needs the audit extra (`pip install 'pain3d[audit]'`, or `pip install -e '.[audit]'` in a checkout).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from PIL import Image
from tqdm.auto import tqdm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-age", type=int, default=80)
    parser.add_argument("--max-age", type=int, default=90)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--sheet", help="PNG of the probed faces, frontal over left view")
    args = parser.parse_args()
    if args.num_identities < 2 or args.min_age > args.max_age:
        parser.error("--num-identities must be at least 2 and --min-age at most --max-age")

    from dataset_builder.audit import RealFaceModels
    from generation.config import GenerationConfig
    from generation.demographics import identity_demographics
    from generation.face.assets import load_face_model
    from generation.pipeline import PainFaceGenerator

    indices, index = [], 0
    while len(indices) < args.num_identities and index < 100 * args.num_identities:
        if args.min_age <= identity_demographics(args.seed, index).age <= args.max_age:
            indices.append(index)
        index += 1
    if len(indices) < args.num_identities:
        parser.error(f"no {args.num_identities} identities aged {args.min_age}-{args.max_age}: widen the range")
    config = GenerationConfig(num_identities=indices[-1] + 1, expressions_per_identity=1, image_size=args.image_size,
                              seed=args.seed)
    models = RealFaceModels.load()
    generator = PainFaceGenerator(config, load_face_model(None, progress=False))
    views = [view.name for view in config.views]
    ages: dict[str, list[int]] = {name: [] for name in views}
    embeddings, genders, tiles = {}, [], []
    try:
        for i in tqdm(indices, desc="identities"):
            identity = generator.identity(i)
            neutral = generator.expression(identity)
            for number, name in enumerate(views):
                image = np.ascontiguousarray(generator.render(identity, neutral, number).image[..., :3])
                reading = models.read(image)
                if reading.detected:
                    age, gender = models.perceive(image, reading.box)
                    ages[name].append(age)
                    if number == 0:
                        embeddings[i] = reading.embedding
                        genders.append(gender == identity.spec.demographics.gender)
                if number < 2:
                    tiles.append(Image.fromarray(image).resize((128, 128)))
    finally:
        generator.close()
    pairs = np.array([np.linalg.norm(embeddings[a] - embeddings[b])
                      for a, b in itertools.combinations(sorted(embeddings), 2)])
    per_view = ", ".join(f"{name} {np.median(found):.1f}" if found else f"{name} -" for name, found in ages.items())
    every_view = np.median(sum(ages.values(), []))
    print(f"seed {args.seed}, {len(indices)} identities aged {args.min_age}-{args.max_age}: perceived median age "
          f"{per_view}, all {every_view:.1f}; frontal pairs under 0.6 {np.mean(pairs < 0.6):.1%} "
          f"({len(pairs)} pairs); gender read as intended {np.mean(genders):.0%}")
    if args.sheet:
        columns = min(len(indices), 12)
        rows = -(-len(indices) // columns)
        sheet = Image.new("RGB", (128 * columns, 256 * rows), (255, 255, 255))
        for k in range(len(indices)):
            x, y = (k % columns) * 128, (k // columns) * 256
            sheet.paste(tiles[2 * k], (x, y))
            sheet.paste(tiles[2 * k + 1], (x, y + 128))
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
