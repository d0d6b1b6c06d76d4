"""The `pain3d` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .assets import cache_dir, prepare_face_model, resolve_face_model
from .face_model import FaceModel, FaceModelError
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

    info = sub.add_parser("info", help="list the action units, their blendshapes and the cache location")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (FaceModelError, ActionUnitError) as error:
        print(f"pain3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
