"""Evaluate a pain model on a clip dataset (`pain3d clips`): every frame through the stills' evaluation
(`evaluation.evaluate_split`: frame-level MAE, RMSE, Pearson, ICC(3,1), F1, AUROC, fairness), then over time, per
clip: Pearson between the predicted and true PSPI curves and the apex timing error, raw and after temporal
smoothing; a plot of predicted against true curves of a few clips. `pain3d evaluate` dispatches here when the split's
rows are clips (docs/clips.md, "Evaluation").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .clips import clips_to_frames
from .collator import PainCollator
from .evaluation import EVALUATION_TOOL, _nan_to_none, _write_replacing, evaluate_split, select_rows, with_transform
from .evaluation import write_predictions
from .pain_metrics import icc_3_1, pearson

SMOOTHING_SECONDS = 0.2  # the centred moving average's window: about one blink, far shorter than any onset (>= 0.3 s)
PLOTTED_CLIPS = 4  # clips drawn in the curves plot


def smoothing_frames(fps: int) -> int:
    """The moving average's width in frames: the odd number nearest SMOOTHING_SECONDS x fps, at least 1."""
    return max(1, 2 * int(math.floor((SMOOTHING_SECONDS * fps - 1) / 2 + 0.5)) + 1)


def smooth(curve: np.ndarray, frames: int) -> np.ndarray:
    """Centred moving average over `frames` (odd) frames; near the clip's ends, over the frames that exist."""
    curve = np.asarray(curve, np.float64)
    if frames <= 1 or len(curve) == 0:
        return curve
    kernel = np.ones(frames)
    return np.convolve(curve, kernel, mode="same") / np.convolve(np.ones_like(curve), kernel, mode="same")


def apex_frames(episodes, fps: int, num_frames: int) -> tuple[int, int]:
    """First and last frame of the clip's true apex: the apex phase of its strongest episode (the first of equals)."""
    strongest = max(episodes, key=lambda e: e["apex_pspi"])  # max keeps the first of equals
    first = int(math.ceil(strongest["apex_start"] * fps - 1e-6))
    last = int(math.floor(strongest["apex_end"] * fps + 1e-6))
    return min(first, num_frames - 1), min(max(last, first), num_frames - 1)


def apex_error(predicted: np.ndarray, apex: tuple[int, int]) -> int:
    """Frames from the predicted curve's maximum (its first) to the true apex phase; 0 inside it."""
    peak = int(np.argmax(predicted))
    first, last = apex
    return max(first - peak, peak - last, 0)


def curve_metrics(curves: list[dict], fps_of_clip: list[int]) -> dict:
    """Per-clip Pearson and apex timing error, raw and smoothed, and the frame-level metrics after smoothing.
    `curves`: one {"predicted", "true", "apex"} per clip."""
    out = {}
    for name, transform in (("raw", lambda c, fps: c), ("smoothed", lambda c, fps: smooth(c, smoothing_frames(fps)))):
        predicted = [transform(c["predicted"], fps) for c, fps in zip(curves, fps_of_clip)]
        correlations = [pearson(p, c["true"]) for p, c in zip(predicted, curves)]
        defined = [r for r in correlations if not math.isnan(r)]
        errors = [apex_error(p, c["apex"]) for p, c in zip(predicted, curves)]
        every_p, every_t = np.concatenate(predicted), np.concatenate([c["true"] for c in curves])
        out[name] = {
            "frame_pspi_mae": float(np.abs(every_p - every_t).mean()),
            "frame_pspi_pearson": pearson(every_p, every_t),
            "frame_pspi_icc": icc_3_1(np.stack([every_p, every_t], axis=1)),
            "clip_pearson_mean": float(np.mean(defined)) if defined else float("nan"),
            "clip_pearson_median": float(np.median(defined)) if defined else float("nan"),
            "clips_with_pearson": len(defined),  # a constant predicted curve has none
            "apex_error_frames_mean": float(np.mean(errors)),
            "apex_error_frames_median": float(np.median(errors)),
        }
    return out


def plot_curves(curves: list[dict], path: str | Path) -> Path:
    """Predicted (raw and smoothed) against true PSPI over time for the first PLOTTED_CLIPS clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = curves[:PLOTTED_CLIPS]
    figure, axes = plt.subplots(len(shown), 1, figsize=(8, 2.2 * len(shown)), sharey=True, squeeze=False)
    for axis, clip in zip(axes[:, 0], shown):
        t = np.arange(len(clip["true"])) / clip["fps"]
        first, last = clip["apex"]
        axis.axvspan(first / clip["fps"], last / clip["fps"], color="tab:red", alpha=0.12, label="true apex")
        axis.plot(t, clip["true"], color="black", label="true PSPI")
        axis.plot(t, clip["predicted"], color="tab:blue", alpha=0.4, linewidth=0.8, label="predicted")
        axis.plot(t, smooth(clip["predicted"], smoothing_frames(clip["fps"])), color="tab:blue",
                  label=f"predicted, smoothed ({smoothing_frames(clip['fps'])} frames)")
        axis.set_title(clip["clip_id"], fontsize=9)
        axis.set_ylabel("PSPI")
    axes[0, 0].legend(fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def evaluate_clips(
    model, image_processor, splits, *, split: str = "test", dataset_name: str = "3DPain clips",
    max_clips: int | None = None, calibration_samples: int = 1000, batch_size: int = 64,
    output: str | Path | None = None, predictions: str | Path | None = None, collator: PainCollator | None = None,
) -> dict:
    """Evaluate `model` on the clips of `splits[split]` (at most `max_clips`, a seeded subset): the stills'
    frame-level evaluation of every frame, plus `clips` (per-clip Pearson, apex timing error in frames, frame-level
    MAE/Pearson/ICC, each raw and smoothed). Writes the JSON to `output`, the curves plot beside it
    (`<output stem>_curves.png`) and one JSON line per frame to `predictions`, when given."""
    config = model.config
    clips = select_rows(splits[split], max_clips)
    frames = clips_to_frames(clips)
    calibration = None
    if "train" in splits and split != "train" and calibration_samples > 0:  # enough training clips, then frames
        per_clip = max(1, min(splits["train"]["num_frames"]))
        train_clips = select_rows(splits["train"], -(-calibration_samples // per_clip), seed=1)
        calibration = with_transform(select_rows(clips_to_frames(train_clips), calibration_samples, seed=1),
                                     image_processor, au_names=config.au_names)
    collator = collator or PainCollator.for_model(config, image_processor)
    evaluation, result = evaluate_split(
        model, with_transform(frames, image_processor, au_names=config.au_names), collator, calibration=calibration,
        dataset_name=dataset_name, split=split, protocol="identity-disjoint split; every frame of every clip",
        batch_size=batch_size,
    )
    curves, start = [], 0
    for row in clips.select_columns(["clip_id", "fps", "num_frames", "pspi", "episodes"]):
        n = int(row["num_frames"])
        curves.append({
            "clip_id": row["clip_id"], "fps": int(row["fps"]), "true": np.asarray(row["pspi"], np.float64),
            "predicted": np.asarray(result["pspi"][start:start + n], np.float64),
            "apex": apex_frames(row["episodes"], int(row["fps"]), n),
        })
        start += n
    assert start == len(frames)  # frames come clip by clip, in order
    evaluation = {"tool": EVALUATION_TOOL, **evaluation, "num_clips": len(curves)}
    evaluation["clips"] = _nan_to_none(curve_metrics(curves, [c["fps"] for c in curves]))
    evaluation["clips"]["smoothing"] = (
        f"centred moving average over {sorted({smoothing_frames(c['fps']) for c in curves})} frames "
        f"(about {SMOOTHING_SECONDS:g} s), shorter at the clip's ends"
    )
    evaluation["clips"]["apex_error"] = (
        "frames from the predicted curve's maximum to the strongest episode's apex phase (0 inside it)"
    )
    if output is not None:
        evaluation["plot"] = str(plot_curves(curves, Path(output).with_name(Path(output).stem + "_curves.png")))
        _write_replacing(output, lambda stream: stream.write(json.dumps(evaluation, indent=2) + "\n"))
    if predictions is not None:
        write_predictions(predictions, frames["sample_id"], result, config)
    return evaluation


def clip_summary(evaluation: dict) -> str:
    """One line per smoothing of the clip metrics, for the command line."""
    lines = []
    for name in ("raw", "smoothed"):
        m = evaluation["clips"][name]
        lines.append(
            f"clips ({name}): n={evaluation['num_clips']} frame MAE {m['frame_pspi_mae']:.4f} Pearson "
            f"{m['frame_pspi_pearson']} ICC {m['frame_pspi_icc']}; per-clip Pearson mean {m['clip_pearson_mean']} "
            f"({m['clips_with_pearson']} clips); apex error {m['apex_error_frames_mean']:.2f} frames (mean)"
        )
    return "\n".join(lines)


__all__ = ["apex_error", "apex_frames", "clip_summary", "curve_metrics", "evaluate_clips",
           "plot_curves", "smooth", "smoothing_frames"]
