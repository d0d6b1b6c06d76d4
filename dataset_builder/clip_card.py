"""The card of a clip dataset folder (`pain3d clips`): README.md from hub_cards/clip_card.md, an animated preview
of one clip (`preview.webp`), that clip's AU and PSPI curves, and histograms of episode phase durations, apex PSPI
and blink rate, all computed from the shards. Every file is recorded in the folder's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import numpy as np
import pyarrow.parquet as pq
import yaml

from generation.clips.config import ClipConfig
from generation.clips.writer import CLIP_TOOL
from generation.columns import CLIP_AUS, SPLITS
from generation.errors import OutputError
from generation.manifest import record
from generation.writer import CONFIG_FILE, plan_shards

from .clips import clip_frames

TEMPLATE = Path(__file__).with_name("clip_card.md")  # hub_cards/clip_card.md
PREVIEW_FILE = "preview.webp"
CURVES_FILE = "plots/clip_au_curves.png"
HISTOGRAMS_FILE = "plots/clip_distributions.png"
CARD_FILES = ("README.md", PREVIEW_FILE, CURVES_FILE, HISTOGRAMS_FILE)
STAT_COLUMNS = ("clip_id", "fps", "num_frames", "apex_pspi", "episodes", "blinks")


def _shards(folder: Path) -> dict[str, list[Path]]:
    return {split: sorted((folder / "data").glob(f"{split}-*.parquet")) for split in SPLITS}


def _first_clip(shards: dict[str, list[Path]]) -> dict:
    """The first clip with the strongest apex among the first shard's clips (a clip worth showing)."""
    path = next(p for paths in shards.values() for p in paths)
    table = pq.read_table(path)
    best = int(np.argmax(table.column("apex_pspi").to_numpy()))
    return table.slice(best, 1).to_pylist()[0]


def _preview(row: dict, output: Path) -> None:
    from PIL import Image

    frames = clip_frames(row)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(output, format="WEBP", save_all=True, append_images=images[1:], duration=int(1000 / row["fps"]),
                   loop=0, lossless=False, quality=85)


def plot_clip_curves(row: dict, output) -> None:
    """A clip's AU curves (top) and PSPI with its apex phases shaded (bottom) over time, as a PNG at `output`
    (`row`: a clip row's clip_id, fps, num_frames, action_units, pspi and episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(row["num_frames"]) / row["fps"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for name in CLIP_AUS:
        values = np.asarray(row["action_units"][name])
        if values.any():
            top.plot(t, values, label=name)
    top.set_ylabel("AU intensity")
    top.legend(ncol=5, fontsize=7)
    bottom.plot(t, row["pspi"], color="black", label="PSPI")
    for episode in row["episodes"]:
        bottom.axvspan(episode["apex_start"], episode["apex_end"], color="tab:red", alpha=0.15)
    bottom.set_ylabel("PSPI (apex shaded)")
    bottom.set_xlabel("seconds")
    top.set_title(row["clip_id"])
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def _histograms(stats: dict[str, list], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for name in ("onset", "apex", "offset"):
        axes[0].hist(stats[name], bins=20, alpha=0.6, label=name)
    axes[0].set_xlabel("episode phase (s)")
    axes[0].legend()
    axes[1].hist(stats["apex_pspi"], bins=np.arange(0.5, 17.5, 1.0), color="tab:red")
    axes[1].set_xlabel("apex PSPI per clip")
    axes[2].hist(stats["blinks_per_minute"], bins=15, color="tab:blue")
    axes[2].set_xlabel("blinks per minute per clip")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def clip_statistics(folder: str | Path) -> dict[str, list]:
    """Per split clip counts and, over all clips: episode phase durations, apex PSPI and blink rates."""
    stats = {"onset": [], "apex": [], "offset": [], "apex_pspi": [], "blinks_per_minute": [], "clips": {}, "frames": 0}
    for split, paths in _shards(Path(folder)).items():
        for path in paths:
            for row in pq.read_table(path, columns=list(STAT_COLUMNS)).to_pylist():
                stats["clips"][split] = stats["clips"].get(split, 0) + 1
                stats["frames"] += row["num_frames"]
                stats["apex_pspi"].append(row["apex_pspi"])
                stats["blinks_per_minute"].append(60 * len(row["blinks"]) * row["fps"] / row["num_frames"])
                for e in row["episodes"]:
                    stats["onset"].append(e["apex_start"] - e["onset_start"])
                    stats["apex"].append(e["apex_end"] - e["apex_start"])
                    stats["offset"].append(e["offset_end"] - e["apex_end"])
    return stats


def write_clip_card(folder: str | Path) -> Path:
    """README.md, the preview and the plots of a finished clip folder. Returns the card's path."""
    folder = Path(folder)
    config = ClipConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())["config"])
    shards = _shards(folder)
    (folder / "plots").mkdir(exist_ok=True)
    _preview(_first_clip(shards), folder / PREVIEW_FILE)
    plot_clip_curves(_first_clip(shards), folder / CURVES_FILE)
    stats = clip_statistics(folder)
    _histograms(stats, folder / HISTOGRAMS_FILE)
    splits = [split for split in SPLITS if shards[split]]
    meta = {
        "license": "other", "task_categories": ["video-classification"],
        "tags": ["synthetic", "pain", "facs", "action-units", "video", "3dpain"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}],
    }
    table = "| split | clips |\n| --- | --- |\n" + "".join(f"| {s} | {stats['clips'][s]} |\n" for s in splits)
    episodes = len(stats["apex"])
    summary = (
        f"{sum(stats['clips'].values())} clips, {stats['frames']} frames at {config.fps} fps "
        f"({config.seconds:g} s each), {episodes} pain episodes; mean blink rate "
        f"{np.mean(stats['blinks_per_minute']):.1f} per minute."
    )
    text = jinja2.Template(TEMPLATE.read_text(), keep_trailing_newline=True).render(
        yaml=yaml.safe_dump(meta, sort_keys=False).strip(), title="3DPain clips", preview=PREVIEW_FILE,
        splits_table=table, view_names=", ".join(v.name for v in config.views), crf=config.crf,
        au_names=", ".join(CLIP_AUS), curves=CURVES_FILE, histograms=HISTOGRAMS_FILE, stats=summary,
    )
    card = folder / "README.md"
    card.write_text(text)
    return card


def finalize_clip_folder(folder: str | Path) -> Path:
    """The card of a clip folder once every planned shard exists; its files recorded in the manifest."""
    folder = Path(folder)
    config = ClipConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())["config"])
    missing = [s.relative_path for s in plan_shards(config) if not (folder / s.relative_path).is_file()]
    if missing:
        raise OutputError(f"{len(missing)} shards are missing (e.g. {missing[0]}): rerun `pain3d clips --resume`")
    record(folder, planned=CARD_FILES, tool=CLIP_TOOL)  # planned first: an interrupted card is still ours
    card = write_clip_card(folder)
    record(folder, [name for name in CARD_FILES if (folder / name).is_file()], tool=CLIP_TOOL)
    return card
