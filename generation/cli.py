"""The `pain3d` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .assets import cache_dir, prepare_face_model, resolve_face_model
from .face_model import FaceModel, FaceModelError
from .errors import ConfigError, OutputError
from .facs import ACTION_UNITS, ActionUnitError, parse_au_assignments, pspi

logger = logging.getLogger("pain3d")

# The preview's default expression: a strong pain face (PSPI 12).
DEFAULT_PREVIEW_AUS = ("AU4=4", "AU6=3", "AU7=4", "AU9=2", "AU10=3", "AU43=1")


def _add_face_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--face-model",
        metavar="PATH",
        help="ICT-FaceKit archive (.zip/.tar.xz), folder or converted .npz "
        "(default: $PAIN3D_FACE_MODEL, then the cache, then a download)",
    )


def cmd_assets(args: argparse.Namespace) -> int:
    path = (
        prepare_face_model(args.face_model, force=args.force)
        if args.face_model
        else resolve_face_model(progress=True)
    )
    model = FaceModel.load(path)
    print(f"face model ready: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(
        f"  {model.num_vertices} vertices, {len(model.faces)} triangles, {len(model.identity_basis)} identity shapes, "
        f"{len(model.expression_names)} expression shapes"
    )
    print("  ICT-FaceKit Light, MIT License, Copyright (c) 2020 USC Institute for Creative Technologies")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .preview import render_preview_sheet

    action_units = parse_au_assignments(args.au or list(DEFAULT_PREVIEW_AUS))
    model = FaceModel.load(resolve_face_model(args.face_model))
    out = render_preview_sheet(
        model, action_units, args.output, seed=args.seed, image_size=args.image_size, title=args.title
    )
    print(f"wrote {out} (PSPI {pspi(action_units):g})")
    return 0


def parse_views(spec: str | None):
    """'frontal,left,right' (default angles) or 'name:yaw:pitch,...' in degrees."""
    from .render import DEFAULT_VIEWS, View

    if not spec:
        return DEFAULT_VIEWS
    defaults = {view.name: view for view in DEFAULT_VIEWS}
    views = []
    for item in spec.split(","):
        name, *angles = item.strip().split(":")
        if not angles:
            if name not in defaults:
                raise ConfigError(
                    f"unknown view {name!r}: use one of {', '.join(defaults)} or give angles as NAME:YAW[:PITCH]"
                )
            views.append(defaults[name])
            continue
        try:
            yaw, pitch = float(angles[0]), float(angles[1]) if len(angles) > 1 else 0.0
        except ValueError:
            raise ConfigError(f"view {item!r}: yaw and pitch must be numbers in degrees (NAME:YAW[:PITCH])") from None
        if not (-90 <= yaw <= 90 and -60 <= pitch <= 60):
            raise ConfigError(f"view {item!r}: yaw must be within +/-90 and pitch within +/-60 degrees")
        views.append(View(name, yaw, pitch))
    return tuple(views)


def cmd_generate(args: argparse.Namespace) -> int:
    import hashlib
    import os

    from .dataset_writer import generate_dataset
    from .pipeline import GenerationConfig

    config = GenerationConfig(
        num_identities=args.num_identities,
        expressions_per_identity=args.expressions_per_identity,
        views=parse_views(args.views),
        image_size=args.image_size,
        seed=args.seed,
        texture=args.texture,
        distractor_probability=args.distractor_probability,
        identities_per_shard=args.identities_per_shard,
        msaa=args.msaa,
        au_overrides=parse_au_assignments(args.au or []),
    )
    from .texture import TEXTURE_BACKENDS

    if config.texture not in TEXTURE_BACKENDS:
        raise ConfigError(f"unknown --texture {config.texture!r}; available: {', '.join(sorted(TEXTURE_BACKENDS))}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    model_path = resolve_face_model(args.face_model)
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    rank, world_size, barrier = 0, 1, None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by accelerate (or torchrun): one share per process
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())  # rendering needs no GPU; gloo works everywhere
        rank, world_size, barrier = state.process_index, state.num_processes, state.wait_for_everyone
    summary = generate_dataset(
        args.output, config, model_path, workers=args.workers, resume=args.resume, overwrite=args.overwrite,
        rank=rank, world_size=world_size, barrier=barrier, progress=not args.quiet, face_model_sha256=sha,
    )
    print(
        f"rank {rank}: wrote {summary['rows']} images of {summary['identities']} identities in "
        f"{summary['seconds']:.1f} s ({summary['images_per_second']:.1f} images/s) to {args.output}"
    )
    return 0


def cmd_export_official(args: argparse.Namespace) -> int:
    from dataset_builder.export import ExportError, export_official

    try:
        report = export_official(args.dataset, args.out, overwrite=args.overwrite)
    except ExportError as error:
        raise OutputError(str(error)) from None
    print(report.summary())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print("action units (intensity 0-5, AU43 0/1; PSPI = AU4 + max(AU6,AU7) + max(AU9,AU10) + AU43):")
    for au in ACTION_UNITS.values():
        shapes = ", ".join(f"{k}x{v:g}" for k, v in au.blendshapes.items())
        print(f"  {au.name:<5} {au.description:<18} {'pain ' if au.in_pspi else 'extra'}  -> {shapes}")
    print(f"face model cache: {cache_dir()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pain3d", description="3DPain: synthetic pain faces with exact FACS labels")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    assets = sub.add_parser("assets", help="prepare the face model cache (convert or download ICT-FaceKit)")
    _add_face_model_flag(assets)
    assets.add_argument("--force", action="store_true", help="convert again even when a cache exists")
    assets.set_defaults(func=cmd_assets)

    preview = sub.add_parser("preview", help="contact sheet of one identity: neutral / pain / heatmap per view")
    _add_face_model_flag(preview)
    preview.add_argument("--output", "-o", type=Path, required=True, help="PNG file to write")
    preview.add_argument("--seed", type=int, default=0, help="identity seed")
    preview.add_argument(
        "--au", action="append", metavar="AU=INTENSITY", help=f"repeatable; default {' '.join(DEFAULT_PREVIEW_AUS)}"
    )
    preview.add_argument("--image-size", type=int, default=256)
    preview.add_argument("--title", help="heading of the sheet")
    preview.set_defaults(func=cmd_preview)

    generate = sub.add_parser("generate", help="generate a 3DPain dataset folder (a Hub dataset repository)")
    _add_face_model_flag(generate)
    generate.add_argument("--output", "-o", type=Path, required=True, help="dataset folder to write")
    generate.add_argument("--num-identities", type=int, required=True)
    generate.add_argument("--expressions-per-identity", type=int, default=10, help="pain expressions per identity")
    generate.add_argument("--views", help="comma list: frontal,left,right (default) or NAME:YAW[:PITCH] in degrees")
    generate.add_argument("--image-size", type=int, default=256)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--workers", type=int, default=1, help="rendering processes on this machine")
    generate.add_argument("--texture", default="procedural", help="texture backend")
    generate.add_argument("--distractor-probability", type=float, default=0.2, help="chance of a non-pain AU")
    generate.add_argument("--identities-per-shard", type=int, default=25)
    generate.add_argument(
        "--au", action="append", metavar="AU=INTENSITY", help="fix an AU in every pain expression (repeatable)"
    )
    generate.add_argument(
        "--msaa", action="store_true", help="4x multisampling instead of feathered silhouettes (about 3x slower on CPU)"
    )
    generate.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    generate.add_argument("--overwrite", action="store_true", help="replace an earlier dataset in --output")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    generate.set_defaults(func=cmd_generate)

    export = sub.add_parser(
        "export-official", help="write a generated dataset in the published 3D-Pain layout (images + JSON + split CSV)"
    )
    export.add_argument("dataset", type=Path, help="generated dataset folder")
    export.add_argument("out", type=Path, help="folder to write")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT")
    export.set_defaults(func=cmd_export_official)

    info = sub.add_parser("info", help="list the action units, their blendshapes and the cache location")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (FaceModelError, ActionUnitError, ConfigError, OutputError) as error:
        print(f"pain3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
