"""`pain3d clips`: the dynamics' contract (pure numpy), and the verb end to end in fresh processes: decoded frame
counts, determinism across workers and resume, a load_dataset round trip, clips_to_frames against the stills'
contract, and bad input refused with one line and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generation.clips.dynamics import (
    APEX_S, AU_QUANTUM, BLINK_S, HEAD_PAIN_DEG, LAG_FRACTION, LEAD_IN_S, OFFSET_S, ONSET_S, apex_pspi_target,
    clip_dynamics,
)
from generation.facs import BLINK_AU, PAIN_AUS, pspi

TINY = ["--num-identities", "2", "--clips-per-identity", "1", "--seconds", "2.5", "--fps", "10", "--image-size", "64",
        "--identities-per-shard", "1", "--seed", "3", "--heatmaps", "--quiet"]
FRAMES = 25  # 2.5 s at 10 fps


def _pain3d(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pain3d", *args], capture_output=True, text=True, timeout=900)


def _dynamics(count: int = 48, seconds: float = 8.0, fps: int = 25):
    return [clip_dynamics(0, i, c, seconds, fps, 4) for i in range(count // 4) for c in range(4)]


def test_dynamics_lead_in_episodes_pspi_and_blinks():
    for d in _dynamics():
        lead_in = d.times < LEAD_IN_S[0]
        assert not d.pspi[lead_in].any() and d.episodes[0].onset_start >= LEAD_IN_S[0] - 1e-9
        assert 1 <= len(d.episodes) <= 3 and d.episodes[0].apex_pspi == d.apex_pspi
        for e in d.episodes:
            assert ONSET_S[0] - 1e-9 <= e.onset <= ONSET_S[1] and APEX_S[0] - 1e-9 <= e.apex <= APEX_S[1]
            assert OFFSET_S[0] - 1e-9 <= e.offset <= OFFSET_S[1] and e.offset_end <= 8.0 + 1e-9
            assert pspi(e.action_units) == e.apex_pspi
        for n in range(d.num_frames):  # the stored PSPI is the formula of the frame's AUs; blinks never count
            aus = {name: d.action_units[name][n] for name in d.action_units}
            assert d.pspi[n] == pspi(aus) == pspi({name: aus[name] for name in PAIN_AUS})
        closed = d.action_units["AU43"] > 0
        assert not (d.action_units[BLINK_AU] > 0)[closed].any()  # blinks kept apart from AU43
        assert set(np.unique(d.action_units["AU43"])) <= {0.0, 1.0}
        if closed.any():
            assert max(e.apex_pspi for e in d.episodes) >= 8  # the eyes close only in strong pain
        for start, duration in d.blinks:
            assert BLINK_S[0] <= duration <= BLINK_S[1]
    blinks_per_minute = [d.blinks_per_minute for d in _dynamics()]
    assert 6 <= np.mean(blinks_per_minute) <= 21


def test_dynamics_smooth_balanced_and_deterministic():
    fps, dt = 25, 1 / 25
    steepest = min(ONSET_S[0], OFFSET_S[0]) * (1 - max(LAG_FRACTION.values()))  # the shortest ramp, seconds
    ramp_bound = 5 * 6 / steepest**2 * dt**2 * 1.2 + 2 * AU_QUANTUM  # smoothstep's |f''| <= 6 / d^2, at intensity 5
    head_bound = max(HEAD_PAIN_DEG.values()) * 6 / min(ONSET_S[0], OFFSET_S[0]) ** 2 * dt**2 * 1.2 + 0.01
    for d in _dynamics(fps=fps):
        for name in ("AU4", "AU6", "AU7", "AU9", "AU10"):
            assert np.abs(np.diff(d.action_units[name], 2)).max() <= ramp_bound, name
        assert np.abs(np.diff(d.head_pose, 2, axis=0)).max() <= head_bound  # degrees per frame squared
        rest = d.pspi == 0
        assert np.abs(d.head_pose[rest]).max() <= 5.0
    targets = [apex_pspi_target(0, i, c, 4) for i in range(4) for c in range(4)]
    assert sorted(targets) == list(range(1, 17))  # 16 clips in a row: every apex PSPI once
    a, b = clip_dynamics(7, 3, 1, 8.0, 25, 4), clip_dynamics(7, 3, 1, 8.0, 25, 4)
    assert all(np.array_equal(a.action_units[k], b.action_units[k]) for k in a.action_units)
    assert np.array_equal(a.head_pose, b.head_pose)


@pytest.fixture(scope="module")
def clip_folders(tmp_path_factory):
    """The tiny clip dataset (with heatmaps) written with 1 worker, and again with 2 workers, in fresh processes."""
    root = tmp_path_factory.mktemp("clips")
    one, two = root / "one", root / "two"
    for folder, extra in ((one, []), (two, ["--workers", "2"])):
        result = _pain3d("clips", "-o", str(folder), *TINY, *extra)
        assert result.returncode == 0, result.stderr
    return one, two


def test_clips_end_to_end(clip_folders):
    """Runs with 1 and 2 workers and a resumed run give the same shard bytes; every row decodes to num_frames
    frames; the folder verifies, loads with load_dataset and converts to frame rows with the stills' columns; the
    heatmaps are the renderer's to the micrometre and the head pose is the stills' angles plus the clip's motion."""
    one, two = clip_folders
    shards = sorted(p.relative_to(one) for p in (one / "data").glob("*.parquet"))
    assert len(shards) == 2
    for shard in shards:
        assert (one / shard).read_bytes() == (two / shard).read_bytes(), shard
    # an interrupted run: one shard gone, resumed
    (two / shards[0]).unlink()
    result = _pain3d("clips", "-o", str(two), *TINY, "--resume")
    assert result.returncode == 0, result.stderr
    assert (one / shards[0]).read_bytes() == (two / shards[0]).read_bytes()
    result = _pain3d("verify", str(one))
    assert result.returncode == 0, result.stderr
    with (two / shards[1]).open("ab") as shard:  # a damaged clip shard: verify names the clips verb to rerun
        shard.write(b"x")
    result = _pain3d("verify", str(two))
    assert result.returncode == 1 and "rerun `pain3d clips --resume`" in result.stderr, result.stderr
    assert (one / "README.md").is_file() and (one / "preview.webp").is_file()
    # the same refusal to overwrite as generate
    result = _pain3d("clips", "-o", str(one), *TINY)
    assert result.returncode == 2 and "not empty" in result.stderr

    script = f"""
import io
import numpy as np
from PIL import Image
from datasets import load_dataset
from dataset_builder import clip_frames, clips_to_frames
from generation.clips.config import ClipConfig
from generation.clips.dynamics import head_view
from generation.clips.rows import ClipRows
from generation.columns import HEATMAP_UNITS_PER_MM, pain_features
from generation.face.assets import load_face_model
from generation.facs import EXTENDED_AUS, PAIN_AUS, pspi
clips = load_dataset("parquet", data_dir={str(one / 'data')!r})
rows = [row for split in clips.values() for row in split]
assert len(rows) == 2
for row in rows:
    frames = clip_frames(row)
    assert frames.shape == (row["num_frames"], 64, 64, 3) and frames.dtype == np.uint8, frames.shape
    assert row["num_frames"] == {FRAMES} and len(row["pspi"]) == {FRAMES} and len(row["landmarks_2d"]) == {FRAMES}
    assert all(len(v) == {FRAMES} for v in row["action_units"].values()) and "AU45" in row["action_units"]
    assert len(row["heatmap"]) == {FRAMES} and all(h.mode == "I;16" for h in row["heatmap"])
    for n in range({FRAMES}):
        assert row["pspi"][n] == pspi({{k: row["action_units"][k][n] for k in PAIN_AUS}})
        moving = any(row["action_units"][k][n] for k in row["action_units"])
        assert (np.asarray(row["heatmap"][n]).max() > 0) == moving, n
# the stored heatmap and head pose of one frame against a render of it here
config = ClipConfig(num_identities=2, clips_per_identity=1, seconds=2.5, fps=10, image_size=64, seed=3,
                    heatmaps=True)
producer = ClipRows(config, load_face_model(progress=False))
row = next(r for r in rows if r["identity_id"].endswith("0"))
index = 0 if row["identity_id"] == producer.generator.spec(0).identity_id else 1
identity, dynamics = producer.generator.identity(index), producer.dynamics(index, 0)
n = int(np.argmax(row["pspi"]))
view = head_view(identity.views[0], dynamics.head_pose[n])
out = producer.generator.render(identity, producer.generator.expression(identity, dynamics.frame(n)), 0, view=view)
stored = np.asarray(row["heatmap"][n], np.float64) / HEATMAP_UNITS_PER_MM
assert np.abs(stored - out.heatmap).max() <= 0.0005 + 1e-6 and out.heatmap.max() > 0.5
still = identity.views[0]  # what the stills' head_pose of this identity stores, in the same angles
pose = [row["head_pose"][axis][n] for axis in ("yaw", "pitch", "roll")]
assert np.allclose(pose, [still.yaw + dynamics.head_pose[n, 0], still.pitch + dynamics.head_pose[n, 1],
                          still.roll + dynamics.head_pose[n, 2]], atol=1e-3), pose
frames = clips_to_frames(clips["train"])
stills = pain_features(["frontal"], EXTENDED_AUS)  # a default still dataset's columns
for name in ("image", "neutral_image", "action_units", "pspi", "landmarks_2d", "heatmap"):
    assert frames.features[name] == stills[name], name
assert len(frames) == sum(row["num_frames"] for row in clips["train"])
first = frames[0]
assert first["image"].size == (64, 64) and set(PAIN_AUS) <= set(first["action_units"])
assert first["heatmap"].mode == "I;16" and first["heatmap"].size == (64, 64)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_evaluate_a_tiny_model_on_clips(clip_folders, tmp_path):
    """`pain3d evaluate` on a clip folder: the stills' frame metrics over every frame, per-clip Pearson and apex
    timing, raw and smoothed, the JSON and the curves plot."""
    one, _ = clip_folders
    model_dir, output = tmp_path / "model", tmp_path / "evaluation.json"
    script = f"""
import torch
from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel
backbone = dict(model_type="vit", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                patch_size=8, intermediate_size=37)
torch.manual_seed(0)
config = ViTPainConfig(backbone_config=backbone, head_hidden_size=16, au_head_hidden_size=16)
ViTPainModel(config).save_pretrained({str(model_dir)!r})
ViTPainImageProcessor.from_model_config(config).save_pretrained({str(model_dir)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    result = _pain3d("evaluate", "--model", str(model_dir), "--dataset", str(one), "--split", "train",
                     "--output", str(output), "--batch-size", "16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "per-clip Pearson" in result.stdout and "smoothed" in result.stdout
    evaluation = json.loads(output.read_text())
    assert evaluation["num_clips"] == 2 and evaluation["num_samples"] == 2 * FRAMES
    clips = evaluation["clips"]
    assert abs(clips["raw"]["frame_pspi_mae"] - evaluation["metrics"]["pspi_mae"]) < 1e-4
    assert "3" in clips["smoothing"]  # 0.2 s at 10 fps: 3 frames
    for name in ("raw", "smoothed"):
        assert 0 <= clips[name]["apex_error_frames_mean"] <= FRAMES
        assert set(clips[name]) >= {"frame_pspi_icc", "frame_pspi_pearson", "clip_pearson_mean"}
    assert Path(evaluation["plot"]).is_file() and Path(evaluation["plot"]).stat().st_size > 10_000


def test_clip_curve_metrics_on_known_curves():
    """Smoothing, per-clip Pearson and the apex timing error on curves whose answers are known."""
    from dataset_builder.clip_evaluation import apex_error, apex_frames, curve_metrics, smooth, smoothing_frames

    assert [smoothing_frames(fps) for fps in (5, 10, 25)] == [1, 3, 5]
    assert np.allclose(smooth(np.array([0, 0, 3, 0, 0.0]), 3), [0, 1, 1, 1, 0])
    assert np.allclose(smooth(np.arange(6.0), 3), [0.5, 1, 2, 3, 4, 4.5])  # shorter windows at the ends
    episodes = [{"apex_start": 1.0, "apex_end": 2.0, "apex_pspi": 4}, {"apex_start": 3.0, "apex_end": 3.5,
                                                                      "apex_pspi": 9}]
    assert apex_frames(episodes, 10, 50) == (30, 35)
    assert apex_error(np.eye(50)[32], (30, 35)) == 0 and apex_error(np.eye(50)[20], (30, 35)) == 10
    true = np.concatenate([np.zeros(20), np.linspace(0, 8, 10), np.full(10, 8.0), np.linspace(8, 0, 10)])
    curves = [{"true": true, "predicted": true + 1.0, "apex": (29, 39)},
              {"true": true, "predicted": np.full(50, 2.0), "apex": (29, 39)}]
    metrics = curve_metrics(curves, [10, 10])["raw"]
    assert metrics["clip_pearson_mean"] == pytest.approx(1.0) and metrics["clips_with_pearson"] == 1
    assert metrics["apex_error_frames_mean"] == pytest.approx(14.5)  # 0, and 29 frames before the apex
    assert metrics["frame_pspi_mae"] == pytest.approx((50 + np.abs(true - 2).sum()) / 100)


@pytest.mark.parametrize("flags, message", [
    (["--seconds", "0"], "--seconds must be within"),
    (["--fps", "100"], "--fps must be an integer within"),
])
def test_bad_input_one_line_and_nothing_written(tmp_path, flags, message):
    output = tmp_path / "out"
    result = _pain3d("clips", "-o", str(output), "--num-identities", "2", *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not output.exists()


def test_generate_refuses_the_clips_only_blink(tmp_path):
    output = tmp_path / "out"
    result = _pain3d("generate", "-o", str(output), "--num-identities", "2", "--au", "AU45=1")
    assert result.returncode == 2 and "AU45 (blink) is a clips-only AU" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not output.exists()


def test_clip_frames_refuses_a_still_row():
    script = """
from dataset_builder import ClipRowError, clip_frames
try:
    clip_frames({"image": {"bytes": b"", "path": None}, "pspi": 0.0})
except ClipRowError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "not a clip row" in result.stdout and "row['image']" in result.stdout
