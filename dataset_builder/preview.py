"""The preview sheet of a finished dataset folder: it reads the parquet shards and renders nothing, so it lives on
the data side (the generator calls it when a run finishes)."""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from generation.columns import HEATMAP_UNITS_PER_MM, HEATMAP_VIEW_MAX_MM, colorize_heatmap
from generation.manifest import replacing

def dataset_preview_sheet(folder: str | Path, output: str | Path, max_identities: int = 6) -> Path:
    """Contact sheet of a generated dataset folder: for a few identities of different demographics, neutral /
    pain (their strongest expression) / heatmap in every view. Reads the parquet shards; renders nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    with replacing(output) as partial:  # never a half-written sheet, even when the disk fills
        fig.savefig(partial, format=Path(output).suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
    return output


def identity_sheet(folder: str | Path, count: int = 24, view: str = "frontal", columns: int = 8, tile: int = 128,
                   min_age: int = 0):
    """A grid of the neutral `view` images of the first `count` identities of a dataset folder (by identity id) of at
    least `min_age` intended years, each labelled with its intended age, gender and ethnicity: the sheet to judge who
    the faces are. PIL image."""
    from PIL import ImageDraw

    wanted = ["identity_id", "expression_index", "view", "age", "gender", "ethnicity", "image"]
    faces: dict[str, tuple] = {}
    for shard in sorted((Path(folder) / "data").glob("*.parquet")):
        features = datasets.Features.from_arrow_schema(pq.read_schema(shard))
        name = {k: features[k].int2str for k in ("view", "gender", "ethnicity") if hasattr(features[k], "int2str")}
        for row in pq.read_table(shard, columns=wanted).to_pylist():
            row.update({k: decode(row[k]) for k, decode in name.items()})  # class labels are stored as integers
            if row["expression_index"] == 0 and row["view"] == view and row["age"] >= min_age:
                faces[row["identity_id"]] = (row["age"], row["gender"], row["ethnicity"], row["image"]["bytes"])
    chosen = [faces[key] for key in sorted(faces)[:count]]
    if not chosen:
        older = f" of identities aged {min_age} or more" if min_age else ""
        raise ValueError(f"no neutral {view!r} images{older} under {folder}/data: is it a generated dataset folder?")
    rows = -(-len(chosen) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * tile), (255, 255, 255))
    for k, (age, gender, ethnicity, data) in enumerate(chosen):
        face = Image.open(io.BytesIO(data)).convert("RGB").resize((tile, tile), Image.LANCZOS)
        label = f"{age} {gender[0].upper()} {ethnicity.split('/')[0]}"
        draw = ImageDraw.Draw(face)
        draw.rectangle((0, tile - 13, tile, tile), fill=(0, 0, 0))
        draw.text((3, tile - 12), label, fill=(255, 255, 255))
        sheet.paste(face, ((k % columns) * tile, (k // columns) * tile))
    return sheet
