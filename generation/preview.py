"""Rendered contact sheets: neutral / pain / heatmap for each view of one identity, with the AUs and PSPI written on
it (sheets of a finished dataset, which only read parquet, are `dataset_builder.preview`)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dataset_builder.preview import HEATMAP_VIEW_MAX_MM, colorize_heatmap

from .face.model import FaceModel
from .face.rig import pose_face, sample_identity
from .facs import PAIN_AUS, pspi, validate_action_units
from .render import FaceRenderer, displacement_mm
from .views import DEFAULT_VIEWS, View

def vertical_gradient(size: int, top=(200, 204, 210), bottom=(120, 124, 132)) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    column = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return np.broadcast_to(column, (size, size, 3)).astype(np.uint8)


def au_label(action_units: Mapping[str, float]) -> str:
    active = [f"{name}={value:g}" for name, value in action_units.items() if value]
    return ", ".join(active) if active else "neutral"


def render_preview_sheet(
    face_model: FaceModel,
    action_units: Mapping[str, float],
    output: str | Path,
    seed: int = 0,
    image_size: int = 256,
    views: Sequence[View] = DEFAULT_VIEWS,
    identity_scale: float = 1.0,
    title: str | None = None,
    renderer: FaceRenderer | None = None,
) -> Path:
    """Render one seeded identity neutral and in pain from every view and save the contact sheet (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    action_units = validate_action_units(action_units)
    identity = sample_identity(np.random.default_rng(seed), scale=identity_scale)
    neutral = pose_face(face_model, identity)
    pain = pose_face(face_model, identity, action_units)
    heat = displacement_mm(pain, neutral)
    own_renderer = renderer is None
    renderer = renderer or FaceRenderer(face_model, image_size=image_size)
    background = vertical_gradient(renderer.image_size)
    try:
        rows = [
            (view, renderer.render(neutral, view, background=background), renderer.render(pain, view, heat, background=background))
            for view in views
        ]
    finally:
        if own_renderer:
            renderer.close()

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
        axes[r, 2].text(
            4, renderer.image_size - 8, f"max {pain_render.heatmap.max():.1f} mm", color="white", fontsize=7
        )
    pain_aus = {name: action_units[name] for name in PAIN_AUS}
    extended = {k: v for k, v in action_units.items() if k not in PAIN_AUS}
    header = title or f"identity seed {seed}"
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
