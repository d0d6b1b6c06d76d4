"""The `pain3d` command line: each verb parses its flags and calls one library function (see the package docstring).
Defaults and choices are read from the objects that own them."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from generation.config import BACKGROUNDS, GenerationConfig
from generation.diffusion_models import DTYPES, PRESETS
from generation.errors import ConfigError, OutputError, Pain3DError
from generation.face.assets import ENV_SOURCE, download_face_model, export_packaged_face_model, face_model_status
from generation.face.assets import load_face_model
from generation.face.assets import prepare_face_model, resolve_face_model
from generation.face.model import FaceModel
from generation.facs import ACTION_UNITS, parse_au_assignments, pspi
from generation.texture import TEXTURE_BACKENDS
from generation.views import DEFAULT_VIEWS, View

logger = logging.getLogger("pain3d")

# The preview's default expression: a strong pain face (PSPI 12).
DEFAULT_PREVIEW_AUS = ("AU4=4", "AU6=3", "AU7=4", "AU9=2", "AU10=3", "AU43=1")


def _default(name: str):
    """The default of a generation parameter, as `GenerationConfig` owns it."""
    return GenerationConfig.__dataclass_fields__[name].default


def _add_face_model_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--face-model",
        metavar="PATH",
        help="ICT-FaceKit archive (.zip/.tar.xz), folder or converted .npz "
        "(default: $PAIN3D_FACE_MODEL, then the cache, then the model packaged with pain3d, then a download)",
    )


def cmd_assets(args: argparse.Namespace) -> int:
    source = args.face_model or os.environ.get(ENV_SOURCE)
    if args.export_packaged:  # the package's own file, from the pinned archive (generation/face/ict_facekit_light/)
        path = export_packaged_face_model(source, args.export_packaged)
    elif source:
        path = prepare_face_model(source, force=args.force)
    elif args.force:  # the cache came from a download: fetch and convert it again
        path = download_face_model()
    else:
        path = resolve_face_model(progress=True)
    model = FaceModel.load(path)
    print(f"face model ready: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(
        f"  {model.num_vertices} vertices, {len(model.faces)} triangles, {len(model.identity_basis)} identity shapes, "
        f"{len(model.expression_names)} expression shapes"
    )
    print("  ICT-FaceKit Light, MIT License, Copyright (c) 2020 USC Institute for Creative Technologies")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Identity I of a seed-S dataset in one view: its `neutral_image` pixel for pixel, posed with --au; or with
    --sheet, neutral / pain / heatmap in every view."""
    from PIL import Image

    from generation.preview import preview_image, render_preview_sheet

    views = parse_views(args.views)
    model = load_face_model(args.face_model)
    if args.sheet:
        action_units = parse_au_assignments(args.au or list(DEFAULT_PREVIEW_AUS))
        output = preview_path(args.output, PREVIEW_FORMATS)
        write = lambda: render_preview_sheet(  # noqa: E731
            model, action_units, output, seed=args.seed, identity=args.identity, image_size=args.image_size,
            views=views, title=args.title,
        )
    else:
        action_units = parse_au_assignments(args.au) if args.au else {}
        output = preview_path(args.output, IMAGE_FORMATS)
        image = preview_image(model, args.seed, args.identity, view=args.view, image_size=args.image_size,
                              action_units=action_units, views=views)
        write = lambda: Image.fromarray(image).save(output)  # noqa: E731
    try:
        write()
    except OSError as error:
        raise OutputError(f"cannot write {output} ({error.strerror or error}); choose a writable path") from None
    print(f"wrote {output} (identity {args.identity}, seed {args.seed}, PSPI {pspi(action_units):g})")
    return 0


PREVIEW_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")  # what matplotlib writes (the sheet)
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".webp")  # a single render (PNG keeps the dataset's pixels exactly)


def preview_path(output: Path, formats: tuple[str, ...] = PREVIEW_FORMATS) -> Path:
    """The file the preview goes to: a folder gets `preview.png` inside it, a name without an extension gets `.png`;
    an extension that cannot be written is an error."""
    if output.is_dir():
        return output / "preview.png"
    if not output.suffix:
        return output.with_name(output.name + ".png")
    if output.suffix.lower() not in formats:
        raise ConfigError(f"--output {output}: cannot write {output.suffix} files; use one of {', '.join(formats)}")
    return output


def parse_views(spec: str | None):
    """'frontal,left,right' (default angles) or 'name:yaw:pitch,...' in degrees."""
    if not spec:
        return DEFAULT_VIEWS
    defaults = {view.name: view for view in DEFAULT_VIEWS}
    views = []
    for item in spec.split(","):
        name, *angles = item.strip().split(":")
        if not name or len(angles) > 2:
            raise ConfigError(f"view {item!r}: write a view as NAME or NAME:YAW[:PITCH] in degrees, e.g. up:0:20")
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


def parse_texture_views(spec: str | None):
    """'0:0,40:5,-40:5' -> ((yaw, pitch), ...) in degrees (pitch optional)."""
    if not spec:
        return None
    views = []
    for item in spec.split(","):
        try:
            angles = [float(a) for a in item.strip().split(":")]
        except ValueError:
            angles = []
        if not 1 <= len(angles) <= 2 or not all(-90 <= angle <= 90 for angle in angles):  # NaN fails too
            raise ConfigError(
                f"--texture-views item {item!r}: give YAW[:PITCH] in degrees within +/-90, e.g. 0:0,40:5,-40:5"
            )
        views.append((angles[0], angles[1] if len(angles) > 1 else 0.0))
    return views


def diffusion_options(args: argparse.Namespace) -> tuple[dict, dict]:
    """Texture and background options from the diffusion flags; a flag that the chosen backends do not use is an
    error rather than silently ignored."""
    # (flag, option name, value) for the texture backend, the background inpainter, or both
    shared = [
        ("--diffusion-preset", "preset", args.diffusion_preset), ("--diffusion-steps", "steps", args.diffusion_steps),
        ("--guidance-scale", "guidance_scale", args.guidance_scale),
        ("--diffusion-resolution", "resolution", args.diffusion_resolution), ("--dtype", "dtype", args.dtype),
    ]
    texture_only = [
        ("--base-model", "base_model", args.base_model), ("--controlnet-model", "controlnet_model", args.controlnet_model),
        ("--normal-controlnet-model", "normal_controlnet_model", args.normal_controlnet_model),
        ("--texture-views", "views", parse_texture_views(args.texture_views)),
    ]
    background_only = [
        ("--inpaint-model", "model", args.inpaint_model),
        ("--scene-prompt", "scenes", tuple(args.scene_prompt) if args.scene_prompt else None),
    ]
    diffusion, inpaint = args.texture == "diffusion", args.background == "inpaint"
    for flags, wanted, needs in (
        (texture_only, diffusion, "--texture diffusion"),
        (background_only, inpaint, "--background inpaint"),
        (shared, diffusion or inpaint, "--texture diffusion or --background inpaint"),
    ):
        unused = [flag for flag, _, value in flags if value is not None and not wanted]
        if unused:
            raise ConfigError(f"{', '.join(unused)}: only used with {needs}")

    def given(*groups) -> dict:
        return {name: value for group in groups for _, name, value in group if value is not None}

    return (given(shared, texture_only) if diffusion else {}), (given(shared, background_only) if inpaint else {})


def _asked_processes() -> int:
    """How many processes the `accelerate launch` that started this one was asked for (1 when unknown)."""
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # not Linux, or no /proc
        return 1
    for flag in ("--num_processes", "--num-processes"):
        if flag in parent[:-1] and parent[parent.index(flag) + 1].isdigit():
            return int(parent[parent.index(flag) + 1])
    return 1


def _warn_if_launched_alone() -> None:
    """`accelerate launch --num_processes 2 --cpu` silently starts one process: say so instead of doing half."""
    if "ACCELERATE_MIXED_PRECISION" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) < _asked_processes():
        logger.warning(
            "accelerate launch started 1 process, not the %d asked: on a CPU machine add --multi_gpu --num_machines 1 "
            "--mixed_precision no --dynamo_backend no (docs/generating.md); this process generates everything",
            _asked_processes(),
        )


def cmd_generate(args: argparse.Namespace) -> int:
    from dataset_builder.finalize import finalize_dataset_folder
    from generation.writer import generate_dataset

    texture_options, background_options = diffusion_options(args)
    config = GenerationConfig(
        num_identities=args.num_identities,
        expressions_per_identity=args.expressions_per_identity,
        views=parse_views(args.views),
        image_size=args.image_size,
        seed=args.seed,
        test_identities=args.test_identities,
        texture=args.texture,
        distractor_probability=args.distractor_probability,
        identities_per_shard=args.identities_per_shard,
        msaa=args.msaa,
        au_overrides=parse_au_assignments(args.au or []),
        texture_options=texture_options,
        background=args.background,
        background_options=background_options,
        passes=args.passes,
        image_format=args.image_format,
    )
    if args.audit:
        from dataset_builder.audit import INSTALL_HINT, audit_available

        if not audit_available():  # checked before anything is generated
            raise ConfigError(f"--audit needs the real-face models of the `audit` extra: run {INSTALL_HINT}")

    def check_diffusion(rank: int, device: str | None) -> str | None:
        if config.texture != "diffusion" and config.background != "inpaint":
            return device
        from generation.diffusion_models import DiffusionTextureOptions, InpaintOptions, check_models, resolve_device

        # a bad --device or a model that is not available fails here, before the output folder is touched
        device = resolve_device(device)
        check_models(
            DiffusionTextureOptions.from_dict(config.texture_options) if config.texture == "diffusion" else None,
            InpaintOptions.from_dict(config.background_options) if config.background == "inpaint" else None,
        )
        logger.info("rank %d: diffusion models run on %s", rank, device)
        return device

    rank, summary = _write_dataset(args, "pain3d generate", generate_dataset, finalize_dataset_folder, config,
                                   prepare=check_diffusion)
    print(
        f"rank {rank}: wrote {summary['rows']} images of {summary['identities']} identities in "
        f"{summary['seconds']:.1f} s ({summary['images_per_second']:.1f} images/s) to {args.output}"
    )
    if args.audit and rank == 0:
        _audit(Path(args.output), progress=not args.quiet)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    _audit(args.dataset, output=args.output, split=args.split, max_identities=args.max_identities,
           progress=not args.quiet)
    return 0


def _audit(dataset: Path, output: Path | None = None, **options) -> None:
    """`pain3d audit` (also the end of `generate --audit`): audit.json, the summary table and, for a folder pain3d
    generated, the card's "Independent audit" section."""
    from dataset_builder.audit import AUDIT_FILE, summary_table
    from dataset_builder.finalize import audit_folder

    result, output, card = audit_folder(dataset, output, **options)
    print(summary_table(result))
    print(f"wrote {output} ({result['images']} images in {result['seconds']:.0f} s, "
          f"{result['images_per_second']} images/s)")
    if card is not None:
        print(f"updated {card} (section 'Independent audit')")
    else:
        print(f"card not updated: only a folder pain3d generated, audited into its own {AUDIT_FILE}, gets the section")


def cmd_export_official(args: argparse.Namespace) -> int:
    from dataset_builder.export import export_official

    report = export_official(args.dataset, args.out, overwrite=args.overwrite)
    print(report.summary())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """A ViTPain model on one split of a dataset: metrics JSON and per-row predictions, through the model's own image
    processor (what `pipeline("pain-estimation")` uses)."""
    import modeling_vitpain  # registers ViTPain with the Auto classes: no remote code to trust
    from dataset_builder.evaluation import check_result_paths
    from dataset_builder.model_evaluation import evaluate_model
    from modeling_vitpain.model_card import fairness_markdown
    from transformers import AutoImageProcessor, AutoModel

    for flag, value, least in (("--batch-size", args.batch_size, 1), ("--max-samples", args.max_samples, 1),
                               ("--calibration-samples", args.calibration_samples, 0)):
        if value is not None and value < least:
            raise ConfigError(f"{flag} must be at least {least}, got {value}")
    local = Path(args.model).is_dir()
    output = args.output or (Path(args.model) if local else Path(".")) / f"evaluation_{args.split}.json"
    try:
        check_result_paths(output, args.predictions)  # before the model loads
    except ValueError as error:
        raise ConfigError(str(error)) from None
    try:
        model = AutoModel.from_pretrained(args.model).eval()
    except (OSError, ValueError, modeling_vitpain.CheckpointMismatchError) as error:  # or weights that do not fit
        raise ConfigError(f"cannot load the model {args.model!r} ({str(error).splitlines()[0]}); pass a ViTPain "
                          "folder written by the training scripts, or a Hub model id") from None
    try:
        processor = AutoImageProcessor.from_pretrained(args.model)
    except OSError:  # a folder saved without its processor: the one that matches the config
        processor = modeling_vitpain.ViTPainImageProcessor.from_model_config(model.config)
    except ValueError as error:  # a saved value out of range (a zero image_std would give NaN predictions)
        raise ConfigError(f"{args.model}/preprocessor_config.json: {error}") from None
    try:
        evaluation = evaluate_model(
            model, processor, args.dataset, split=args.split, split_csv=args.split_csv, max_samples=args.max_samples,
            calibration_samples=args.calibration_samples, batch_size=args.batch_size, output=output,
            predictions=args.predictions,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    metrics = evaluation["metrics"]
    print(f"{args.split}: n={evaluation['num_samples']} PSPI MAE {metrics['pspi_mae']:.4f} RMSE "
          f"{metrics['pspi_rmse']:.4f} Pearson {metrics['pspi_pearson']} ICC {metrics['pspi_icc']}")
    if evaluation.get("clips"):  # a clip dataset: per-clip and smoothed figures (dataset_builder/clip_evaluation.py)
        from dataset_builder.clip_evaluation import clip_summary

        print(clip_summary(evaluation) + (f"\nwrote {evaluation['plot']}" if evaluation.get("plot") else ""))
    if evaluation.get("fairness"):
        print(fairness_markdown(evaluation["fairness"]))
    print(f"wrote {output}" + (f" and {args.predictions}" if args.predictions else ""))
    return 0


def _distributed(device: str | None = None) -> tuple[int, int, object, str | None]:
    """(rank, world size, barrier, device) of this process: one share per process under accelerate (or torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None, device
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # rendering needs no GPU; gloo works everywhere
    if device is None and state.device.type == "cuda":
        device = str(state.device)
    return state.process_index, state.num_processes, state.wait_for_everyone, device


def _write_dataset(args: argparse.Namespace, tool: str, write, finalize, config, prepare=None) -> tuple[int, dict]:
    """The run both `generate` and `clips` make: find the face model, take this process's share (accelerate ranks;
    `prepare(rank, device)` may check more before the folder is touched), and on rank 0 hold the folder's writer lock
    for the whole run, card included, so a second writer is refused naming this one. Returns (rank, summary)."""
    import hashlib

    from generation.manifest import writer_lock

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    model_path = resolve_face_model(args.face_model)
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    _warn_if_launched_alone()
    rank, world_size, barrier, device = _distributed(getattr(args, "device", None))
    if prepare is not None:
        device = prepare(rank, device)
    with writer_lock(args.output, tool) if rank == 0 else contextlib.nullcontext():
        summary = write(
            args.output, config, model_path, workers=args.workers, resume=args.resume, overwrite=args.overwrite,
            rank=rank, world_size=world_size, barrier=barrier, progress=not args.quiet, face_model_sha256=sha,
            device=device,
        )
        if rank == 0:
            finalize(args.output)
    return rank, summary


def cmd_clips(args: argparse.Namespace) -> int:
    """Labelled pain clips: one row per clip (H.264 video, per-frame AUs, PSPI, blinks, landmarks, head pose)."""
    from dataset_builder.clip_card import finalize_clip_folder
    from generation.clips.config import ClipConfig
    from generation.clips.writer import generate_clips

    config = ClipConfig(
        num_identities=args.num_identities, clips_per_identity=args.clips_per_identity, seconds=args.seconds,
        fps=args.fps, views=parse_views(args.views or "frontal"), image_size=args.image_size, seed=args.seed,
        crf=args.crf, heatmaps=args.heatmaps, identities_per_shard=args.identities_per_shard,
    )
    rank, summary = _write_dataset(args, "pain3d clips", generate_clips, finalize_clip_folder, config)
    print(
        f"rank {rank}: wrote {summary['clips']} clips ({summary['frames']} frames) of {summary['identities']} "
        f"identities in {summary['seconds']:.1f} s ({summary['frames_per_second']:.1f} frames/s) to {args.output}"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from generation.writer import CONFIG_FILE, dataset_kind, verify_dataset

    checked, problems = verify_dataset(args.dataset)
    if not problems:
        print(f"{args.dataset}: all {checked} files match the sizes and sha256 recorded when pain3d wrote them")
        return 0
    for path, problem in sorted(problems.items()):
        print(f"{args.dataset}/{path}: {problem}", file=sys.stderr)
    tool = dataset_kind(json.loads((Path(args.dataset) / CONFIG_FILE).read_text())).tool  # generate or clips
    print(
        f"pain3d verify: {len(problems)} of {checked} files are bad; rerun `{tool} --resume` with the same "
        "parameters to render bad or missing shards again",
        file=sys.stderr,
    )
    return 1


def cmd_info(args: argparse.Namespace) -> int:
    print("action units (intensity 0-5, AU43 0/1; PSPI = AU4 + max(AU6,AU7) + max(AU9,AU10) + AU43):")
    for au in ACTION_UNITS.values():
        shapes = ", ".join(f"{k}x{v:g}" for k, v in au.blendshapes.items())
        print(f"  {au.name:<5} {au.description:<18} {'pain ' if au.in_pspi else 'extra'}  -> {shapes}")
    print(face_model_status())
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pain3d")
    except PackageNotFoundError:  # a checkout that is not installed
        return "unknown (not installed)"


def _add_dataset_run_flags(parser: argparse.ArgumentParser, default, what: str) -> None:
    """The flags `generate` and `clips` share: where, how many, who, and how the run treats the folder. `default(name)`
    reads the default from the kind's config."""
    _add_face_model_flag(parser)
    parser.add_argument("--output", "-o", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--num-identities", type=int, required=True,
                        help=f"number of synthetic identities (balanced over age group, gender and ethnicity){what}")
    parser.add_argument("--image-size", type=int, default=default("image_size"), help="image side in pixels")
    parser.add_argument("--seed", type=int, default=default("seed"), help="identity i depends only on (seed, i)")
    parser.add_argument("--identities-per-shard", type=int, default=default("identities_per_shard"),
                        help="identities per parquet shard")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes on this machine")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier dataset in --output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_assets(sub) -> None:
    assets = sub.add_parser("assets", help="prepare the face model cache (convert or download ICT-FaceKit)")
    _add_face_model_flag(assets)
    assets.add_argument("--force", action="store_true", help="convert again even when a cache exists")
    assets.add_argument("--export-packaged", metavar="FILE", type=Path,
                        help="write the model packaged with pain3d to FILE, from --face-model ARCHIVE (the pinned "
                        "ICT-FaceKit Light) cut to the expression shapes the AU table drives")
    assets.set_defaults(func=cmd_assets)


def _add_preview(sub) -> None:
    preview = sub.add_parser(
        "preview", help="identity I of a seed-S dataset in one view (its neutral_image; --au poses it; --sheet: all views)"
    )
    _add_face_model_flag(preview)
    preview.add_argument("--output", "-o", type=Path, required=True, help="image file to write (PNG keeps the pixels)")
    preview.add_argument("--seed", type=int, default=_default("seed"), help="the dataset's seed")
    preview.add_argument("--identity", type=int, default=0, metavar="I", help="dataset identity index (id_0000I)")
    preview.add_argument("--view", default=DEFAULT_VIEWS[0].name, help="view name among --views")
    preview.add_argument("--views", help="the dataset's views, as for generate (default frontal,left,right)")
    preview.add_argument(
        "--au", action="append", metavar="AU=INTENSITY",
        help=f"repeatable; pose the identity (with --sheet default {' '.join(DEFAULT_PREVIEW_AUS)})",
    )
    preview.add_argument("--image-size", type=int, default=_default("image_size"), help="image side in pixels")
    preview.add_argument("--sheet", action="store_true", help="contact sheet: neutral / pain / heatmap in every view")
    preview.add_argument("--title", help="heading of the sheet")
    preview.set_defaults(func=cmd_preview)


def _add_generate(sub) -> None:
    generate = sub.add_parser(
        "generate", help="generate a 3DPain dataset folder (a Hub dataset repository)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_dataset_run_flags(generate, _default, "")
    generate.add_argument("--expressions-per-identity", type=int, default=_default("expressions_per_identity"),
                          help="pain expressions per identity (plus one neutral)")
    generate.add_argument("--views", help="comma list: frontal,left,right (default) or NAME:YAW[:PITCH] in degrees")
    generate.add_argument("--test-identities", type=int, default=_default("test_identities"), metavar="N",
                          help="fairness protocol: identities 0..N-1 are the test split, N/60 per demographic cell "
                          "(a multiple of 60; docs/fairness.md)")
    generate.add_argument("--texture", default=_default("texture"), choices=sorted(TEXTURE_BACKENDS),
                          help="texture backend: procedural (CPU) or diffusion")
    generate.add_argument("--distractor-probability", type=float, default=_default("distractor_probability"),
                          help="chance of a non-pain AU")
    generate.add_argument(
        "--au", action="append", metavar="AU=INTENSITY", help="fix an AU in every pain expression (repeatable)"
    )
    generate.add_argument(
        "--msaa", action="store_true", help="4x multisampling instead of feathered silhouettes (about 3x slower on CPU)"
    )
    generate.add_argument("--passes", default="", metavar="P1,P2",
                          help="opt-in ground-truth image columns: depth,normals,segmentation (docs/ground_truth.md)")
    generate.add_argument("--image-format", default=_default("image_format"), metavar="FORMAT",
                          help="image and neutral_image: webp-lossless (default), png, or lossy webp:Q / jpeg:Q "
                               "(Q 1-100; sizes and PSNR in docs/benchmarks.md); heatmaps stay lossless PNG")
    generate.add_argument(
        "--audit", action="store_true", help="run `pain3d audit` on the result (needs the `audit` extra: pip install "
        "'pain3d[audit]')"
    )
    _add_diffusion_flags(generate)
    generate.set_defaults(func=cmd_generate)


def _add_diffusion_flags(generate: argparse.ArgumentParser) -> None:
    diffusion = generate.add_argument_group(
        "diffusion texturing and backgrounds",
        "--texture diffusion bakes a depth-ControlNet Stable Diffusion portrait into each identity's texture; "
        "--background inpaint paints a scene around each view. Models are Hub ids (cached with `hf download ID`) "
        "or local folders; presets pick the ids: sd15 (SD 1.5 + depth ControlNet, 512 px), sdxl (1024 px).",
    )
    diffusion.add_argument("--background", default=_default("background"), choices=BACKGROUNDS,
                           help="procedural backgrounds, or a scene painted around each view by an inpainting model")
    diffusion.add_argument("--diffusion-preset", choices=tuple(PRESETS), help="model family (default sd15)")
    diffusion.add_argument("--base-model", metavar="ID", help="text-to-image pipeline (default: the preset's)")
    diffusion.add_argument("--controlnet-model", metavar="ID", help="depth ControlNet (default: the preset's)")
    diffusion.add_argument("--normal-controlnet-model", metavar="ID", help="add a normal-map ControlNet")
    diffusion.add_argument("--inpaint-model", metavar="ID", help="inpainting pipeline (default: the preset's)")
    diffusion.add_argument("--diffusion-steps", type=int, metavar="N", help="denoising steps (default 30)")
    diffusion.add_argument("--guidance-scale", type=float, help="classifier-free guidance (default 7.5)")
    diffusion.add_argument("--diffusion-resolution", type=int, metavar="PX", help="generated image size")
    diffusion.add_argument(
        "--texture-views", metavar="YAW:PITCH,...", help="cameras whose images are baked (default 0:0, frontal)"
    )
    diffusion.add_argument("--scene-prompt", action="append", metavar="TEXT", help="background scene (repeatable)")
    diffusion.add_argument("--dtype", choices=DTYPES, help="model precision")
    diffusion.add_argument(
        "--device", help="where diffusion models run (default: this process's GPU under accelerate, cuda, else cpu)"
    )


def _add_clips(sub) -> None:
    from generation.clips.config import CLIP_DEFAULT_VIEWS, DEFAULT_CRF, ClipConfig

    def default(name: str):
        return ClipConfig.__dataclass_fields__[name].default

    clips = sub.add_parser(
        "clips", help="labelled pain clips: per-frame AUs, PSPI, blinks and head motion (a Hub dataset folder)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_dataset_run_flags(clips, default, "; identity i is identity i of `generate` with the same seed")
    clips.add_argument("--clips-per-identity", type=int, default=default("clips_per_identity"))
    clips.add_argument("--seconds", type=float, default=default("seconds"), help="length of a clip")
    clips.add_argument("--fps", type=int, default=default("fps"), help="frames per second")
    clips.add_argument("--views", default=",".join(v.name for v in CLIP_DEFAULT_VIEWS),
                       help="comma list: frontal,left,right or NAME:YAW[:PITCH] in degrees")
    clips.add_argument("--crf", type=int, default=DEFAULT_CRF, help="H.264 quality (0 lossless; 13: PSNR >= 40 dB)")
    clips.add_argument("--heatmaps", action="store_true",
                       help="per-frame millimetre heatmaps, lossless (the stills' 16-bit PNG of micrometres)")
    clips.set_defaults(func=cmd_clips)


def _add_export(sub) -> None:
    export = sub.add_parser(
        "export-official", help="write a generated dataset in the published 3D-Pain layout (images + JSON + split CSV)"
    )
    export.add_argument("dataset", type=Path, help="generated dataset folder")
    export.add_argument("out", type=Path, help="folder to write")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT")
    export.set_defaults(func=cmd_export_official)


def _add_audit(sub) -> None:
    audit = sub.add_parser(
        "audit", help="judge a dataset with models trained on real faces; writes audit.json and the card's section"
    )
    audit.add_argument("dataset", type=Path, help="dataset folder (anything datasets.load_dataset reads)")
    audit.add_argument("--max-identities", type=int, metavar="N", help="audit only the first N identities")
    audit.add_argument("--split", metavar="S", help="audit one split (default: all)")
    audit.add_argument("--output", "-o", type=Path, metavar="FILE", help="default: DATASET/audit.json")
    audit.add_argument("--quiet", action="store_true", help="no progress bar")
    audit.set_defaults(func=cmd_audit)


def _add_evaluate(sub) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="evaluate a ViTPain model on a dataset split: metrics JSON and per-row predictions",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    evaluate.add_argument("--model", required=True, help="ViTPain folder or Hub id")
    evaluate.add_argument("--dataset", required=True, help="generated folder, official-layout folder or Hub id")
    evaluate.add_argument("--split", default="test", help="split to evaluate")
    evaluate.add_argument("--split-csv", dest="split_csv", help="identity split CSV of an official-layout folder")
    evaluate.add_argument("--predictions", type=Path, metavar="FILE.jsonl",
                          help="write one JSON line per row (sample_id, pspi, action_units, pain_probability)")
    evaluate.add_argument("--output", type=Path, help="metrics JSON (default: MODEL/evaluation_SPLIT.json)")
    evaluate.add_argument("--max-samples", dest="max_samples", type=int,
                          help="a seeded subset of the split (of a clip dataset: clips)")
    evaluate.add_argument("--calibration-samples", dest="calibration_samples", type=int, default=1000,
                          help="training rows whose predictions calibrate the F1 cut-offs (0: uncalibrated)")
    evaluate.add_argument("--batch-size", dest="batch_size", type=int, default=64, help="images per model call")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_verify_and_info(sub) -> None:
    verify = sub.add_parser("verify", help="check a generated dataset's files against the sha256 recorded when written")
    verify.add_argument("dataset", type=Path, help="dataset folder written by pain3d generate or pain3d clips")
    verify.set_defaults(func=cmd_verify)
    info = sub.add_parser("info", help="list the action units, their blendshapes and which face model is used")
    info.set_defaults(func=cmd_info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pain3d", description="3DPain: synthetic pain faces with exact FACS labels")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"pain3d {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_assets, _add_preview, _add_generate, _add_export, _add_audit, _add_evaluate, _add_clips,
                _add_verify_and_info):
        add(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run stops cleanly with one line."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except Pain3DError as error:
        print(f"pain3d {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        for name in ("SIGINT", "SIGTERM"):  # a second signal must not interrupt the clean-up
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        hint = "; rerun with --resume" if args.command in ("generate", "clips") else ""
        how = "terminated" if isinstance(interrupt, Terminated) else "interrupted"
        print(f"pain3d {args.command}: {how}{hint}", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
