"""What makes different identities look alike to the audit's face-recognition model: the frontal neutral images of
the same identities rendered under variants that each change one thing, with, per variant, the share of
different-identity pairs closer than the model's 0.6 threshold, the median pair distance and how far each face
moved from its own image.

    python scripts/probe_identity.py [--num-identities 30] [--seed 0] [--min-age 65] [--variants own,no-sag]

Variants (`own` always comes first, as the reference):
- own: the identities as generated;
- shape-only: each identity's own face shape with identity 0's look (appearance, light and camera);
- look-only: identity 0's face shape with each identity's own look;
- no-sag: no ageing sag, hollows or hooding (the shape of age);
- no-relief: no skin relief (wrinkles and pores shaded through the normal map);
- young-skin: the texture, lashes and eyes of a 25-year-old, with the shape of the intended age;
- wide-shape: a wider draw of the identity shape (PCA spread 1.7 instead of 1.3, its own seeded stream);
- same-hair, same-skin, same-light, same-brows, same-iris: everything the identity's own but one part, which is
  identity 0's (the hair: style, colour, volume, length and hairline, not its greying; the skin tone; the light and
  camera; the eyebrows' shape and thickness; the iris colour);
- no-extras: no stubble, grown beard, make-up, lipstick or earrings (the eyelashes stay as drawn).

How far the look-alike rate rises when one part is made the same for everyone tells how much that part tells the
identities apart for the model.

Needs the audit extra (`pip install 'pain3d[audit]'`, or `pip install -e '.[audit]'` in a checkout). Prints one line per variant; `--sheet` saves the faces.

`--shape-spread` renders nothing: it prints how widely the same identities' faces vary, per sex, in the face measures
of `generation.face.rig.MEASURES` (landmark distances in mm, standard deviation across identities), to set beside the
spread that anthropometric surveys report for real faces.
"""

from __future__ import annotations

import argparse
import io
import itertools
from dataclasses import replace

import numpy as np
from PIL import Image

VARIANTS = ("own", "shape-only", "look-only", "no-sag", "no-relief", "young-skin", "wide-shape", "same-hair",
            "same-skin", "same-light", "same-brows", "same-iris", "no-extras")
# The `Appearance` fields of each part that a `same-*` variant takes from identity 0.
PARTS = {
    "same-hair": ("hair_style", "hair_rgb", "hair_volume", "hair_length_scale", "hair_length", "hairline_mm",
                  "temple_dip_mm", "hairline_tilt", "balding", "covering_rgb"),
    "same-skin": ("skin_rgb",),
    "same-brows": ("brows", "brow_thickness_mm"),
    "same-iris": ("iris_rgb",),
}


def variant_spec(name: str, spec, reference, face_model, seed: int):
    """The `IdentitySpec` of `spec` under variant `name` (`reference`: identity 0)."""
    from generation.face.rig import demographic_identity
    from generation.rng import stream

    a = spec.appearance
    if name in ("own", "no-relief"):
        return spec
    if name == "shape-only":
        return replace(spec, appearance=reference.appearance, lighting=reference.lighting, camera=reference.camera)
    if name == "look-only":
        return replace(spec, coefficients=reference.coefficients)
    if name == "no-sag":
        return replace(spec, appearance=replace(a, sag_mm=0.0))
    if name == "young-skin":
        return replace(spec, appearance=replace(a, age_factor=0.0, skin_age=0.0))
    if name in PARTS:
        return replace(spec, appearance=replace(a, **{f: getattr(reference.appearance, f) for f in PARTS[name]}))
    if name == "same-light":
        return replace(spec, lighting=reference.lighting, camera=reference.camera)
    if name == "no-extras":
        return replace(spec, appearance=replace(a, beard_density=0.0, beard_style="", makeup=0.0, lipstick=0.0,
                                                earrings=""))
    if name == "wide-shape":
        rng = stream("probe-wide-shape", seed, spec.index)
        coefficients = demographic_identity(face_model, a.male, rng, age_factor=a.age_factor, spread=1.7,
                                            ethnicity=spec.demographics.ethnicity)
        return replace(spec, coefficients=coefficients)
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def print_shape_spread(specs, face_model, seed: int) -> None:
    """Mean and standard deviation across `specs` of each face measure (mm), women and men apart."""
    from generation.face.rig import MEASURES, measure_matrix

    lm = face_model.neutral[face_model.landmarks]
    mean_face = np.array([sum(sign * lm[k, axis] for k, axis, sign in terms) for terms in MEASURES.values()])
    matrix = measure_matrix(face_model, len(specs[0].coefficients))
    by_sex = {sex: np.array([mean_face + matrix @ s.coefficients for s in specs if s.demographics.gender == sex])
              for sex in ("female", "male")}
    print(f"face measures (mm) of {len(specs)} identities (seed {seed}), across identities of each sex:")
    print(f"{'measure':<18} " + " ".join(f"{sex + ' mean':>12} {sex + ' sd':>10}" for sex in by_sex))
    for k, name in enumerate(MEASURES):
        print(f"{name:<18} " + " ".join(f"{v[:, k].mean():>12.1f} {v[:, k].std():>10.1f}" if len(v) > 1 else
                                        f"{'-':>12} {'-':>10}" for v in by_sex.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-identities", type=int, default=30, help="identities probed (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-age", type=int, default=0, help="only identities of at least this intended age")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--face-model")
    parser.add_argument("--sheet", help="PNG of every probed face, one row per variant")
    parser.add_argument("--shape-spread", action="store_true",
                        help="print the spread of the face measures per sex instead (renders nothing)")
    args = parser.parse_args()
    names = ["own"] + [n for n in args.variants.split(",") if n and n != "own"]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    from generation.demographics import AGE_GROUPS

    oldest = max(high for _, _, high in AGE_GROUPS)
    if args.num_identities < 2:
        parser.error(f"--num-identities {args.num_identities}: pairs need at least 2 identities")
    if args.min_age > oldest:
        parser.error(f"--min-age {args.min_age}: no identity is older than {oldest}; use {oldest} or less")

    from tqdm.auto import tqdm

    from generation.config import GenerationConfig
    from generation.demographics import identity_demographics
    from generation.face.assets import load_face_model
    from generation.pipeline import PainFaceGenerator
    from generation.sampling.identity import identity_spec
    from generation.views import DEFAULT_VIEWS

    face_model = load_face_model(args.face_model, progress=False)
    indices, index = [], 0
    while len(indices) < args.num_identities:  # the first identities of at least --min-age
        if identity_demographics(args.seed, index).age >= args.min_age:
            indices.append(index)
        index += 1
    config = GenerationConfig(num_identities=indices[-1] + 1, expressions_per_identity=1,
                              image_size=args.image_size, seed=args.seed, views=DEFAULT_VIEWS[:1])
    if args.shape_spread:
        print_shape_spread([identity_spec(config, face_model, i) for i in indices], face_model, args.seed)
        return
    from dataset_builder.audit import RealFaceModels

    models = RealFaceModels.load()
    generator = PainFaceGenerator(config, face_model)
    reference = identity_spec(config, face_model, 0)
    print(f"{len(indices)} identities (seed {args.seed}, intended age >= {args.min_age}), frontal neutral, "
          f"{args.image_size} px; pairs: {len(indices) * (len(indices) - 1) // 2}")
    print(f"{'variant':<12} {'found':>6} {'pairs < 0.6':>12} {'median':>7} {'moved from own (mean)':>22}")
    own, tiles = None, []
    try:
        for name in names:
            generator.texturer.relief = name != "no-relief"
            embeddings = {}
            for i in tqdm(indices, desc=name, leave=False):
                spec = variant_spec(name, identity_spec(config, face_model, i), reference, face_model, args.seed)
                row = next(r for r in generator(spec) if r["expression_index"] == 0)
                image = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
                reading = models.read(image)
                if reading.detected:
                    embeddings[i] = reading.embedding
                if args.sheet:
                    tiles.append(Image.fromarray(image).resize((96, 96)))
            own = own or embeddings
            pairs = np.array([np.linalg.norm(embeddings[a] - embeddings[b])
                              for a, b in itertools.combinations(sorted(embeddings), 2)])
            moved = [np.linalg.norm(embeddings[i] - own[i]) for i in embeddings if i in own]
            print(f"{name:<12} {len(embeddings):>3}/{len(indices):<2} {np.mean(pairs < 0.6):>11.1%} "
                  f"{np.median(pairs):>7.3f} {np.mean(moved):>22.3f}", flush=True)
    finally:
        generator.close()
    if args.sheet:
        sheet = Image.new("RGB", (96 * len(indices), 96 * len(names)))
        for k, tile in enumerate(tiles):
            sheet.paste(tile, ((k % len(indices)) * 96, (k // len(indices)) * 96))
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")


if __name__ == "__main__":
    main()
