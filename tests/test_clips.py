"""`pain3d clips`: the dynamics' contract (pure numpy), and the verb end to end in fresh processes: decoded frame
counts, determinism across workers and resume, a load_dataset round trip, clips_to_frames against the stills'
contract, and bad input refused with one line and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generation.clips.dynamics import (
    APEX_S, BLINK_S, HEAD_PAIN_DEG, LAG_FRACTION, LEAD_IN_S, OFFSET_S, ONSET_S, AU_QUANTUM, apex_pspi_target, clip_dynamics,
)
from generation.facs import BLINK_AU, PAIN_AUS, pspi

TINY = ["--num-identities", "2", "--clips-per-identity", "1", "--seconds", "2.5", "--fps", "8", "--image-size", "64",
        "--identities-per-shard", "1", "--seed", "3", "--quiet"]


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


def test_clips_end_to_end(tmp_path):
    """Two runs with 1 and 2 workers and a resumed run give the same shard bytes; every row decodes to num_frames
    frames; the folder verifies, loads with load_dataset and converts to frame rows with the stills' columns."""
    one, two = tmp_path / "one", tmp_path / "two"
    result = _pain3d("clips", "-o", str(one), *TINY)
    assert result.returncode == 0, result.stderr
    result = _pain3d("clips", "-o", str(two), *TINY, "--workers", "2")
    assert result.returncode == 0, result.stderr
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
    assert (one / "README.md").is_file() and (one / "preview.webp").is_file()
    # the same refusal to overwrite as generate
    result = _pain3d("clips", "-o", str(one), *TINY)
    assert result.returncode == 2 and "not empty" in result.stderr

    script = f"""
import numpy as np
from datasets import load_dataset
from dataset_builder import clip_frames, clips_to_frames
from generation.columns import pain_features
from generation.facs import PAIN_AUS, pspi
clips = load_dataset("parquet", data_dir={str(one / 'data')!r})
rows = [row for split in clips.values() for row in split]
assert len(rows) == 2
for row in rows:
    frames = clip_frames(row)
    assert frames.shape == (row["num_frames"], 64, 64, 3) and frames.dtype == np.uint8, frames.shape
    assert row["num_frames"] == 20 and len(row["pspi"]) == 20 and len(row["landmarks_2d"]) == 20
    assert all(len(v) == 20 for v in row["action_units"].values()) and "AU45" in row["action_units"]
    for n in range(20):
        assert row["pspi"][n] == pspi({{k: row["action_units"][k][n] for k in PAIN_AUS}})
frames = clips_to_frames(clips["train"])
stills = pain_features(["frontal"])
for name in ("image", "neutral_image", "action_units", "pspi", "landmarks_2d"):
    assert frames.features[name] == stills[name], name
assert len(frames) == sum(row["num_frames"] for row in clips["train"])
first = frames[0]
assert first["image"].size == (64, 64) and set(PAIN_AUS) <= set(first["action_units"])
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


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
