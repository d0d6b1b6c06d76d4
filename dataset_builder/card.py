"""The dataset card (README.md) of a generated 3DPain folder, with every figure computed from its parquet shards.

`write_dataset_card(folder, generation_config)` reads only the label and demographic columns of
`folder/data/<split>-*.parquet` (pyarrow column projection: image bytes are never read), draws the PSPI,
action-unit and demographic plots into `folder/plots/`, and fills `hub_cards/dataset_card.md`: Hub YAML (license,
task categories, tags, `configs` with `data_files` per split, `dataset_info` features and split sizes), how the
data was generated, the distributions, intended use, limitations, citation and the ICT-FaceKit notice.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from datasets import ClassLabel, Features

from generation.facs import PAIN_AUS, PAIN_THRESHOLDS, PSPI_MAX

from .features import HEATMAP_UNITS_PER_MM, SPLITS

TEMPLATE = Path(__file__).resolve().parents[1] / "hub_cards" / "dataset_card.md"
PLOTS_DIR = "plots"
STAT_COLUMNS = (
    "identity_id", "expression_index", "view", "yaw", "pitch", "action_units", "pspi", "age", "age_group", "gender",
    "ethnicity",
)
SPLIT_COLORS = {"train": "#4C72B0", "validation": "#DD8452", "test": "#55A868"}


class DatasetCardError(ValueError):
    """The folder has no shards to describe, or the template is missing."""


@dataclass
class SplitStats:
    """Label columns of one split, as numpy arrays (one entry per row)."""

    rows: int = 0
    identity_id: list = field(default_factory=list)
    expression_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    view: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    camera: dict[str, np.ndarray] = field(default_factory=dict)  # yaw, pitch in degrees (NaN where unknown)
    pspi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    action_units: dict[str, np.ndarray] = field(default_factory=dict)
    demographics: dict[str, list] = field(default_factory=dict)  # per row: age, age_group, gender, ethnicity
    num_bytes: int = 0  # uncompressed size of the split's columns (parquet metadata), as datasets reports it
    download_size: int = 0  # bytes of its parquet files
    files: list[Path] = field(default_factory=list)


def _shards(folder: Path) -> dict[str, list[Path]]:
    shards = {split: sorted((folder / "data").glob(f"{split}-*.parquet")) for split in SPLITS}
    if not any(shards.values()):
        raise DatasetCardError(
            f"no parquet shards under {folder / 'data'} (expected data/<split>-NNNNN-of-MMMMM.parquet): write the "
            f"shards before the card"
        )
    return shards


def _uncompressed_bytes(path: Path) -> int:
    metadata = pq.ParquetFile(path).metadata
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def read_statistics(folder: str | Path) -> tuple[Features, dict[str, SplitStats]]:
    """Features (from the shards' schema metadata) and the label columns of every split, without image bytes."""
    folder = Path(folder)
    features: Features | None = None
    stats: dict[str, SplitStats] = {}
    for split, files in _shards(folder).items():
        if not files:
            continue
        tables = []
        for path in files:
            schema = pq.read_schema(path)
            features = features or Features.from_arrow_schema(schema)
            tables.append(pq.read_table(path, columns=[c for c in STAT_COLUMNS if c in schema.names]))
        table = pa.concat_tables(tables)
        split_stats = SplitStats(
            rows=table.num_rows,
            files=files,
            num_bytes=sum(_uncompressed_bytes(p) for p in files),
            download_size=sum(p.stat().st_size for p in files),
        )
        split_stats.identity_id = table["identity_id"].to_pylist()
        split_stats.expression_index = np.asarray(table["expression_index"].to_numpy(zero_copy_only=False))
        split_stats.view = np.asarray(table["view"].to_numpy(zero_copy_only=False))
        split_stats.pspi = np.asarray(table["pspi"].to_numpy(zero_copy_only=False), dtype=np.float64)
        for angle in ("yaw", "pitch"):
            if angle in table.column_names:
                values = table[angle].to_pylist()
                split_stats.camera[angle] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        units = table["action_units"].combine_chunks()
        split_stats.action_units = {
            units.type.field(i).name: np.asarray(units.field(i).to_numpy(zero_copy_only=False), dtype=np.float64)
            for i in range(units.type.num_fields)
        }
        for column in ("age", "age_group", "gender", "ethnicity"):
            if column in table.column_names:
                split_stats.demographics[column] = table[column].to_pylist()
        stats[split] = split_stats
    return features, stats


# ---- plots ----------------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def plot_pspi(stats: dict[str, SplitStats], path: Path) -> Path:
    """Stacked bars of rows per PSPI value (bins of width 1, 0-16), one colour per split."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    values = np.arange(PSPI_MAX + 1)
    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=120)
    bottom = np.zeros(len(values))
    for split, s in stats.items():
        counts = np.bincount(np.clip(np.rint(s.pspi).astype(int), 0, PSPI_MAX), minlength=PSPI_MAX + 1)
        ax.bar(values, counts, bottom=bottom, color=SPLIT_COLORS.get(split), label=f"{split} ({s.rows} rows)",
               edgecolor="white", linewidth=0.5)
        bottom += counts
    for x, total in zip(values, bottom):
        if total:
            ax.text(x, total, f"{int(total)}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(values)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("PSPI (rounded to the nearest integer)")
    ax.set_ylabel("rows")
    ax.set_title("PSPI of every row (expression index 0 = neutral is PSPI 0)")
    ax.set_ylim(0, max(bottom.max(), 1) * 1.12)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_action_units(stats: dict[str, SplitStats], au_names: list[str], path: Path) -> Path:
    """For each AU, the share of pain rows (expression index > 0) at each intensity, as stacked horizontal bars."""
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    pain = np.concatenate([s.expression_index > 0 for s in stats.values()])
    levels = np.arange(6)
    colors = plt.get_cmap("Reds")(np.linspace(0.08, 0.95, len(levels)))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(au_names) + 1.4), dpi=120)
    for row, name in enumerate(au_names):
        values = np.concatenate([s.action_units.get(name, np.zeros(s.rows)) for s in stats.values()])[pain]
        counts = np.bincount(np.clip(np.rint(values).astype(int), 0, 5), minlength=6)
        shares = counts / max(len(values), 1)
        left = 0.0
        for level, share in zip(levels, shares):
            ax.barh(row, share, left=left, color=colors[level], edgecolor="white", linewidth=0.5,
                    label=f"intensity {level}" if row == 0 else None)
            if share >= 0.06:
                ax.text(left + share / 2, row, f"{share:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if level >= 3 else "black")
            left += share
    ax.set_yticks(range(len(au_names)), au_names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"share of pain rows ({int(pain.sum())} rows with expression index > 0)")
    extended = [name for name in au_names if name not in PAIN_AUS]
    ax.set_title("Action-unit intensities (FACS 0-5; AU43 is 0/1)"
                 + (f"; {', '.join(extended)}: non-pain distractors" if extended else ""))
    ax.legend(ncol=6, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _identity_attributes(stats: dict[str, SplitStats], features: Features) -> dict[str, Counter]:
    """Per demographic column, a Counter of identities (label names; "unknown" for missing values)."""
    first: dict[str, dict[str, Any]] = {}
    for s in stats.values():
        for i, identity in enumerate(s.identity_id):
            if identity not in first:
                first[identity] = {column: values[i] for column, values in s.demographics.items()}
    counters: dict[str, Counter] = {}
    for column in ("age_group", "gender", "ethnicity"):
        feature = features.get(column)
        names = feature.names if isinstance(feature, ClassLabel) else None
        counter: Counter = Counter({name: 0 for name in names or ()})
        for attributes in first.values():
            value = attributes.get(column)
            counter["unknown" if value is None else names[value] if names else value] += 1
        counters[column] = counter
    return counters


def plot_demographics(counters: dict[str, Counter], path: Path) -> Path:
    """Identities per age group, gender and ethnicity, one bar chart each."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=120, gridspec_kw={"width_ratios": [1.2, 0.7, 1.6]})
    titles = {"age_group": "age group (years)", "gender": "gender", "ethnicity": "ethnicity"}
    for ax, (column, counter) in zip(axes, counters.items()):
        labels, counts = list(counter), [counter[k] for k in counter]
        if column == "ethnicity":
            ax.barh(range(len(labels)), counts, color="#8172B3")
            ax.set_yticks(range(len(labels)), labels)
            ax.invert_yaxis()
            for y, count in enumerate(counts):
                ax.text(count, y, f" {count}", va="center", fontsize=8)
            ax.set_xlim(0, max(counts + [1]) * 1.18)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("identities")
        else:
            ax.bar(range(len(labels)), counts, color="#64B5CD" if column == "age_group" else "#C44E52")
            ax.set_xticks(range(len(labels)), labels)
            for x, count in enumerate(counts):
                ax.text(x, count, f"{count}", ha="center", va="bottom", fontsize=8)
            ax.set_ylim(0, max(counts + [1]) * 1.18)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("identities")
        ax.set_title(titles[column])
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Demographic attributes the {sum(next(iter(counters.values())).values())} identities were "
                 f"generated for")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- text -----------------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _splits_table(stats: dict[str, SplitStats], view_names: list[str]) -> str:
    rows = []
    for split, s in stats.items():
        views = ", ".join(f"{name} {int((s.view == i).sum())}" for i, name in enumerate(view_names))
        rows.append([split, s.rows, len(set(s.identity_id)), int((s.expression_index == 0).sum()),
                     int((s.expression_index > 0).sum()), views])
    total = [sum(s.rows for s in stats.values()), sum(len(set(s.identity_id)) for s in stats.values()),
             sum(int((s.expression_index == 0).sum()) for s in stats.values()),
             sum(int((s.expression_index > 0).sum()) for s in stats.values()), ""]
    rows.append(["**total**", *total])
    return _table(["split", "rows", "identities", "neutral rows", "pain rows", "rows per view"], rows)


def _pspi_table(stats: dict[str, SplitStats]) -> str:
    rows = []
    for split, s in stats.items():
        pain = s.pspi[s.expression_index > 0]
        rows.append([
            split,
            f"{pain.mean():.2f}" if len(pain) else "-",
            f"{np.median(pain):g}" if len(pain) else "-",
            f"{pain.max():g}" if len(pain) else "-",
            *(f"{(s.pspi >= t).mean():.1%}" if s.rows else "-" for t in PAIN_THRESHOLDS),
        ])
    return _table(
        ["split", "mean PSPI (pain rows)", "median", "max", *(f"rows with PSPI >= {t}" for t in PAIN_THRESHOLDS)],
        rows,
    )


def _au_table(stats: dict[str, SplitStats], au_names: list[str]) -> str:
    pain = np.concatenate([s.expression_index > 0 for s in stats.values()])
    rows = []
    for name in au_names:
        values = np.concatenate([s.action_units.get(name, np.zeros(s.rows)) for s in stats.values()])[pain]
        active = values[values > 0]
        rows.append([
            name, f"{(values > 0).mean():.1%}" if len(values) else "-",
            f"{active.mean():.2f}" if len(active) else "-", f"{values.max():g}" if len(values) else "-",
        ])
    return _table(["action unit", "active in pain rows", "mean intensity when active", "max"], rows)


def _demographics_table(counters: dict[str, Counter], stats: dict[str, SplitStats]) -> str:
    ages = []
    seen = set()
    for s in stats.values():
        for identity, age in zip(s.identity_id, s.demographics.get("age", [None] * s.rows)):
            if identity not in seen:
                seen.add(identity)
                if age is not None:
                    ages.append(age)
    lines = []
    for column, counter in counters.items():
        total = sum(counter.values()) or 1
        cells = ", ".join(f"{name} {count} ({count / total:.0%})" for name, count in counter.items())
        lines.append(f"- **{column.replace('_', ' ')}**: {cells}")
    if ages:
        lines.append(f"- **age**: {min(ages)}-{max(ages)} years, mean {np.mean(ages):.1f}, median {np.median(ages):g}")
    return "\n".join(lines)


def _find(config: dict, *keys: str) -> Any:
    """The first of `keys` present in `config` or one level down (generation configs nest sections)."""
    for key in keys:
        if key in config:
            return config[key]
    for value in config.values():
        if isinstance(value, dict):
            found = _find(value, *keys)
            if found is not None:
                return found
    return None


def _generation_section(config: dict | None, stats: dict[str, SplitStats], view_names: list[str],
                        image_size: tuple[int, int] | None) -> str:
    identities = sum(len(set(s.identity_id)) for s in stats.values())
    expressions = max((int(s.expression_index.max()) for s in stats.values() if s.rows), default=0)
    size = f"{image_size[0]} x {image_size[1]} px" if image_size else "unknown"
    lines = [
        "Pipeline: ICT-FaceKit Light face model -> identity shape and demographic sampling -> FACS action-unit rig "
        "(AU -> ARKit blendshapes) -> texture -> offscreen render of every view -> parquet shards. Heatmaps are the "
        "per-vertex distance between the neutral and the pain mesh of the same identity, rendered from the same "
        "camera, in millimetres.",
        "",
        f"- identities: {identities}",
        f"- expressions per identity: 1 neutral + up to {expressions} pain configurations",
        f"- views: {_views_with_angles(stats, view_names)}",
        f"- image size: {size}",
    ]
    if config:
        for label, keys in (
            ("seed", ("seed",)),
            ("texture backend", ("texture_backend", "texture", "texturer")),
            ("backgrounds", ("background",)),
            ("chance of a non-pain distractor AU", ("distractor_probability",)),
            ("fixed AU intensities", ("au_overrides",)),
            ("face model file (sha256)", ("face_model", "face_model_sha256")),
        ):
            value = _find(config, *keys)
            if value not in (None, {}, []):
                lines.append(f"- {label}: `{json.dumps(value, sort_keys=True) if isinstance(value, dict) else value}`")
        models = [
            (_find(config, options) or {}).get(key)
            for options, key in (("texture_options", "base_model"), ("texture_options", "controlnet_model"),
                                 ("texture_options", "normal_controlnet_model"), ("background_options", "model"))
        ]
        if any(models):  # diffusion texturing / inpainting: the models behind the images
            lines.append("- diffusion models: " + ", ".join(f"`{m}`" for m in models if m))
        versions = _find(config, "versions", "package_versions")
        if isinstance(versions, dict):
            lines.append("- package versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
        lines += [
            "",
            "<details><summary>Full generation config (generation_config.json)</summary>",
            "",
            "```json",
            json.dumps(config, indent=2, sort_keys=True, default=str),
            "```",
            "</details>",
        ]
    else:
        lines.append("- generation config: not recorded with this folder")
    return "\n".join(lines)


def _views_with_angles(stats: dict[str, SplitStats], view_names: list[str]) -> str:
    """"frontal (yaw 0, pitch 0 degrees), ..." with the angles of the rows of each view (median; omitted if unknown)."""
    parts = []
    for index, name in enumerate(view_names):
        angles = {}
        for angle in ("yaw", "pitch"):
            values = np.concatenate(
                [s.camera.get(angle, np.full(s.rows, np.nan))[s.view == index] for s in stats.values()]
            )
            values = values[~np.isnan(values)]
            if len(values):
                angles[angle] = float(np.median(values))
        parts.append(f"{name} (yaw {angles['yaw']:g}, pitch {angles['pitch']:g} degrees)" if len(angles) == 2 else name)
    return ", ".join(parts)


def _first_image_size(stats: dict[str, SplitStats]) -> tuple[int, int] | None:
    """Width and height of the first stored image (reads one row of one shard)."""
    from io import BytesIO

    from PIL import Image

    for s in stats.values():
        for path in s.files:
            parquet = pq.ParquetFile(path)
            if parquet.metadata.num_rows:
                value = next(parquet.iter_batches(batch_size=1, columns=["image"])).column(0)[0].as_py()
                if value and value.get("bytes"):
                    return Image.open(BytesIO(value["bytes"])).size
    return None


def card_metadata(features: Features, stats: dict[str, SplitStats], pretty_name: str) -> dict:
    """The README YAML: license, task categories, tags, configs with data_files per split, dataset_info."""
    splits = [split for split in SPLITS if split in stats and stats[split].rows]  # an empty split cannot load
    return {
        "pretty_name": pretty_name,
        "license": "mit",
        "language": ["en"],
        "task_categories": ["image-classification", "image-feature-extraction", "other"],
        "tags": ["pain", "facs", "action-units", "pspi", "facial-expression", "synthetic", "3d", "heatmap",
                 "healthcare"],
        "size_categories": [_size_category(sum(s.rows for s in stats.values()))],
        "configs": [{
            "config_name": "default",
            "default": True,
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits],
        }],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": split, "num_bytes": stats[split].num_bytes, "num_examples": stats[split].rows}
                       for split in splits],
            "download_size": sum(stats[split].download_size for split in splits),
            "dataset_size": sum(stats[split].num_bytes for split in splits),
        },
    }


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"


def write_dataset_card(folder: str | Path, generation_config: dict | None = None, *,
                       pretty_name: str = "3DPain synthetic pain faces", load_path: str | None = None) -> Path:
    """Write `folder/README.md` (and `folder/plots/*.png`) from the shards under `folder/data`. Returns the path.

    `generation_config` (default: `folder/generation_config.json` when present) fills "How the data was generated";
    `load_path` is what the card's example passes to `load_dataset` (default: the folder path).
    """
    folder = Path(folder)
    if not TEMPLATE.is_file():
        raise DatasetCardError(f"dataset card template not found at {TEMPLATE}: reinstall the 3DPain project")
    if generation_config is None and (folder / "generation_config.json").is_file():
        generation_config = json.loads((folder / "generation_config.json").read_text())
    features, stats = read_statistics(folder)
    view_feature = features["view"]
    view_names = list(view_feature.names) if isinstance(view_feature, ClassLabel) else ["view"]
    au_names = [name for name in features["action_units"]]
    extended = [name for name in au_names if name not in PAIN_AUS]

    plots = folder / PLOTS_DIR
    plots.mkdir(exist_ok=True)
    plot_pspi(stats, plots / "pspi_histogram.png")
    plot_action_units(stats, au_names, plots / "action_units.png")
    counters = _identity_attributes(stats, features)
    has_demographics = any(name != "unknown" and count for c in counters.values() for name, count in c.items())
    if has_demographics:
        plot_demographics(counters, plots / "demographics.png")

    metadata = yaml.safe_dump(card_metadata(features, stats, pretty_name), sort_keys=False, allow_unicode=True,
                              width=120).strip()
    has_preview = (folder / "preview.png").is_file()
    preview = "![Preview: neutral, pain and heatmap per view](preview.png)" if has_preview else ""
    # jinja2 with StrictUndefined, the engine of the model card too: a missing value is an error, never blank text
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = environment.from_string(TEMPLATE.read_text()).render(
        yaml=metadata,
        title=pretty_name,
        preview=preview,
        splits_table=_splits_table(stats, view_names),
        heatmap_units=HEATMAP_UNITS_PER_MM,
        view_names=", ".join(f"`{name}`" for name in view_names),
        au_names=", ".join(name for name in au_names if name in PAIN_AUS),
        extended_aus=f"; non-pain distractors (not in PSPI): {', '.join(extended)}" if extended else "",
        load_path=load_path or str(folder),
        generation=_generation_section(generation_config, stats, view_names, _first_image_size(stats)),
        pspi_table=_pspi_table(stats),
        au_table=_au_table(stats, au_names),
        demographics_figure="![Demographics of the identities](plots/demographics.png)" if has_demographics else "",
        demographics_table=_demographics_table(counters, stats) if has_demographics
        else "No demographic attributes are recorded in these shards.",
    )
    path = folder / "README.md"
    path.write_text(text)
    return path


def finalize_dataset_folder(folder: str | Path, generation_config: dict | None = None) -> Path:
    """The last step of a generated dataset: `preview.png` from the shards, then the card (`README.md`, plots)."""
    from .preview import dataset_preview_sheet

    folder = Path(folder)
    dataset_preview_sheet(folder, folder / "preview.png")
    return write_dataset_card(folder, generation_config)
