"""Renders of single dataset identities through the one identity path (`PainFaceGenerator`): `preview_image` is
identity I of a dataset generated with seed S, in one view, neutral or posed (`pain3d preview`), pixel for pixel
what the dataset stores; `render_preview_sheet` lays out neutral / pain / heatmap for every view (sheets of a
finished dataset, which only read parquet, are `dataset_builder.preview`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .columns import HEATMAP_VIEW_MAX_MM, colorize_heatmap
from .config import GenerationConfig
from .errors import ConfigError
from .face.model import FaceModel
from .facs import PAIN_AUS, pspi, validate_action_units
from .pipeline import PainFaceGenerator
from .views import DEFAULT_IMAGE_SIZE, DEFAULT_VIEWS, View


def preview_generator(
    face_model: FaceModel, seed: int, identity: int, image_size: int = DEFAULT_IMAGE_SIZE,
    views: Sequence[View] = DEFAULT_VIEWS,
) -> PainFaceGenerator:
    """The generator of a dataset with this seed, image size and views that holds identity `identity` (the
    generator's other parameters are the defaults of `pain3d generate`)."""
    if isinstance(identity, bool) or not isinstance(identity, int) or identity < 0:
        raise ConfigError(f"--identity must be a non-negative integer (a dataset identity index), got {identity!r}")
    config = GenerationConfig(num_identities=identity + 1, seed=seed, image_size=image_size, views=tuple(views))
    return PainFaceGenerator(config, face_model)


def view_number(views: Sequence[View], name: str) -> int:
    names = [view.name for view in views]
    if name not in names:
        raise ConfigError(f"unknown --view {name!r}: choose one of {', '.join(names)}")
    return names.index(name)


def preview_image(
    face_model: FaceModel, seed: int, identity: int, view: str = "frontal", image_size: int = DEFAULT_IMAGE_SIZE,
    action_units: Mapping[str, float] | None = None, views: Sequence[View] = DEFAULT_VIEWS,
) -> np.ndarray:
    """uint8 (H, W, 3): identity `identity` of a dataset generated with `seed`, `image_size` and `views`, in view
    `view`, neutral (its `neutral_image`) or posed with `action_units`."""
    number = view_number(views, view)
    aus = validate_action_units(action_units, fill=False) if action_units else None
    with preview_generator(face_model, seed, identity, image_size, views) as generator:
        built = generator.identity(identity)
        return generator.render(built, generator.expression(built, aus), number).image


def au_label(action_units: Mapping[str, float]) -> str:
    active = [f"{name}={value:g}" for name, value in action_units.items() if value]
    return ", ".join(active) if active else "neutral"


def render_preview_sheet(
    face_model: FaceModel, action_units: Mapping[str, float], output: str | Path, seed: int = 0, identity: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE, views: Sequence[View] = DEFAULT_VIEWS, title: str | None = None,
) -> Path:
    """Identity `identity` of a seed-`seed` dataset, neutral and posed with `action_units`, in every view, with the
    heatmap: a contact sheet (PNG, or any format matplotlib writes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    action_units = validate_action_units(action_units)
    with preview_generator(face_model, seed, identity, image_size, views) as generator:
        built = generator.identity(identity)
        neutral, pain = generator.expression(built), generator.expression(built, action_units)
        rows = [
            (view, generator.render(built, neutral, number), generator.render(built, pain, number))
            for number, view in enumerate(views)
        ]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.55 * len(rows) + 0.7), squeeze=False)
    for r, (view, neutral_render, pain_render) in enumerate(rows):
        panels = (neutral_render.image, pain_render.image, colorize_heatmap(pain_render.heatmap))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(("neutral", "pain", f"heatmap (0-{HEATMAP_VIEW_MAX_MM:g} mm)")[c], fontsize=10)
        axes[r, 0].scatter(*neutral_render.landmarks_2d.T, s=1.5, c="#35d0ff", linewidths=0)
        axes[r, 0].set_ylabel(f"{view.name}\nyaw {view.yaw:+g}°", fontsize=9)
        axes[r, 2].text(4, image_size - 8, f"max {pain_render.heatmap.max():.1f} mm", color="white", fontsize=7)
    pain_aus = {name: action_units[name] for name in PAIN_AUS}
    extended = {k: v for k, v in action_units.items() if k not in PAIN_AUS}
    header = title or f"identity {identity}, seed {seed}"
    fig.suptitle(
        f"{header}\n{au_label(pain_aus)}{'  +  ' + au_label(extended) if any(extended.values()) else ''}"
        f"   |   PSPI = {pspi(action_units):g} / 16",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
