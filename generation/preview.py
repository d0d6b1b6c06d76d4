"""Contact sheets: neutral / pain / heatmap for each view of one identity, with the AUs and PSPI written on it."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .face_model import FaceModel
from .facs import PAIN_AUS, pspi, validate_action_units
from .render import DEFAULT_VIEWS, FaceRenderer, View, displacement_mm
from .rig import pose_face, sample_identity

# Colour scale of heatmaps for viewing only; stored heatmaps are raw millimetres.
HEATMAP_VIEW_MAX_MM = 12.0
HEATMAP_CMAP = "inferno"


def colorize_heatmap(heatmap: np.ndarray, vmax: float = HEATMAP_VIEW_MAX_MM) -> np.ndarray:
    """uint8 (H, W, 3) view of a millimetre heatmap on a fixed scale (0 .. vmax mm)."""
    from matplotlib import colormaps

    return (colormaps[HEATMAP_CMAP](np.clip(heatmap / vmax, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


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


def dataset_preview_sheet(folder: str | Path, output: str | Path, max_identities: int = 6) -> Path:
    """Contact sheet of a generated dataset folder: for a few identities of different demographics, neutral /
    pain (their strongest expression) / heatmap in every view. Reads the parquet shards; renders nothing."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq
    from PIL import Image

    from dataset_builder.features import HEATMAP_UNITS_PER_MM

    folder = Path(folder)
    shards = sorted((folder / "data").glob("*.parquet"), key=lambda p: (not p.name.startswith("test"), p.name))
    labels = ("identity_id", "expression_index", "view", "pspi", "age", "age_group", "gender", "ethnicity")
    chosen: dict[str, dict] = {}
    for shard in shards:  # greedy: prefer identities that differ from the chosen ones in every attribute
        table = pq.read_table(shard, columns=list(labels))
        for row in table.to_pylist():
            attrs = (row["age_group"], row["gender"], row["ethnicity"])
            if row["identity_id"] in chosen or len(chosen) >= max_identities:
                continue
            if all(all(a != b for a, b in zip(attrs, c["attrs"])) for c in chosen.values()) or len(shards) == 1:
                chosen[row["identity_id"]] = {"attrs": attrs, "shard": shard}
    for shard in shards:  # fill up with anyone when the strict rule found too few
        for ident in pq.read_table(shard, columns=["identity_id"]).column(0).to_pylist():
            if len(chosen) < max_identities and ident not in chosen:
                chosen[ident] = {"shard": shard}

    def decode(cell):
        return Image.open(io.BytesIO(cell["bytes"]))

    rows = []
    # show a range of pain: row r takes the expression whose PSPI is nearest an evenly spaced target
    targets = np.linspace(16, 4, num=max(len(chosen), 1))
    for target, (ident, info) in zip(targets, chosen.items()):
        table = pq.read_table(info["shard"], filters=[("identity_id", "=", ident)])
        records = table.to_pylist()
        pain = [r for r in records if r["expression_index"] > 0] or records
        picked = min(pain, key=lambda r: (abs(r["pspi"] - target), r["expression_index"]))["expression_index"]
        per_view = sorted((r for r in records if r["expression_index"] == picked), key=lambda r: r["view"])
        rows.append((records[0], per_view))
    import datasets

    features = datasets.Features.from_arrow_schema(pq.read_schema(shards[0])) if shards else None
    names = {key: features[key].names for key in ("view", "age_group", "gender", "ethnicity")} if features else {}

    num_views = max(len(views) for _, views in rows) if rows else 1
    fig, axes = plt.subplots(
        len(rows), 3 * num_views, figsize=(1.35 * 3 * num_views, 1.55 * len(rows) + 0.5), squeeze=False
    )
    for r, (first, views) in enumerate(rows):
        for v, record in enumerate(views):
            heat = np.asarray(decode(record["heatmap"]), dtype=np.float32) / HEATMAP_UNITS_PER_MM
            panels = (decode(record["neutral_image"]), decode(record["image"]), colorize_heatmap(heat))
            for c, panel in enumerate(panels):
                ax = axes[r, 3 * v + c]
                ax.imshow(panel)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{names['view'][record['view']]}\n{('neutral', 'pain', 'heatmap')[c]}", fontsize=7)
        axes[r, 0].set_ylabel(
            f"{names['ethnicity'][first['ethnicity']]}\n{names['gender'][first['gender']]}, {first['age']}\n"
            f"PSPI {views[0]['pspi']:g}",
            fontsize=7,
        )
    fig.suptitle(f"3DPain sample: neutral / pain / heatmap (0-{HEATMAP_VIEW_MAX_MM:g} mm)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97), pad=0.3)
    output = Path(output)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
