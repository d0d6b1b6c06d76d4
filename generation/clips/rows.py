"""Clip rows of one identity: its dynamics (`dynamics.clip_dynamics`) posed and rendered frame by frame through the
one identity path (`PainFaceGenerator`: identity i of the same seed is the clip's person), encoded as H.264."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..columns import CLIP_AUS, HEAD_POSE_AXES, encode_heatmap, encode_png
from ..face.model import FaceModel
from ..pipeline import PainFaceGenerator
from ..sampling.identity import identity_spec
from .config import ClipConfig
from .dynamics import ClipDynamics, clip_dynamics, head_view
from .video import encode_video


class ClipRows:
    """`rows(index)`: every clip row of identity `index` (clip by clip, view by view). `render_seconds` is the time
    spent in the renderer, `encode_seconds` in the video encoder."""

    def __init__(self, config: ClipConfig, face_model: FaceModel, device: str | None = None):
        self.config = config
        self.face_model = face_model
        self.generator = PainFaceGenerator(config.generation, face_model, device=device)
        self.encode_seconds = 0.0

    @property
    def render_seconds(self) -> float:
        return self.generator.render_seconds

    def close(self) -> None:
        self.generator.close()

    def dynamics(self, index: int, clip_number: int) -> ClipDynamics:
        c = self.config
        return clip_dynamics(c.seed, index, clip_number, c.seconds, c.fps, c.clips_per_identity,
                             c.non_pain_probability)

    def frames(self, identity, dynamics: ClipDynamics, view_number: int = 0) -> ClipRender:
        """One clip of `identity` in its view `view_number`, rendered frame by frame, lossless."""
        return render_clip(self.generator, identity, dynamics, view_number, self.config.heatmaps)

    def __call__(self, index: int) -> list[dict]:
        config = self.config
        spec = identity_spec(config.generation, self.face_model, index)
        identity = self.generator.identity(spec)
        neutral = self.generator.expression(identity)
        neutral_png = [encode_png(self.generator.render(identity, neutral, v).image, config.png_compress_level)
                       for v in range(len(identity.views))]
        rows = []
        for clip_number in range(config.clips_per_identity):
            dynamics = self.dynamics(index, clip_number)
            for view_number, named_view in enumerate(config.views):
                clip = self.frames(identity, dynamics, view_number)
                started = time.perf_counter()
                video = encode_video(clip.frames, config.fps, config.crf)
                heatmaps = None
                if clip.heatmaps is not None:
                    heatmaps = [encode_heatmap(h, config.png_compress_level) for h in clip.heatmaps]
                self.encode_seconds += time.perf_counter() - started
                rows.append(clip_row(spec, clip_number, named_view.name, dynamics, video, neutral_png[view_number],
                                     clip, heatmaps))
        return rows


@dataclass(frozen=True)
class ClipRender:
    """One clip in one view, lossless: uint8 (N, H, W, 3) `frames`, (N, 68, 2) `landmarks_2d` in pixels, (N, 3)
    `head_pose` (each frame's camera angles: yaw, pitch, roll in degrees, as the stills' `head_pose`) and, when asked,
    float32 (N, H, W) `heatmaps` in millimetres."""

    frames: np.ndarray
    landmarks_2d: np.ndarray
    head_pose: np.ndarray
    heatmaps: np.ndarray | None = None


def render_clip(generator: PainFaceGenerator, identity, dynamics: ClipDynamics, view_number: int = 0,
                heatmaps: bool = False) -> ClipRender:
    """`dynamics` acted by `identity` (built by `generator`) in its view `view_number`, frame by frame: the one way a
    clip is rendered (`pain3d clips` and the demo's Clip tab)."""
    frames, landmarks, poses, maps = [], [], [], []
    for n in range(dynamics.num_frames):
        expression = generator.expression(identity, dynamics.frame(n))
        if not heatmaps:  # no heatmap pass: it costs about a third of a render
            expression = replace(expression, displacement=None)
        view = head_view(identity.views[view_number], dynamics.head_pose[n])
        out = generator.render(identity, expression, view_number, view=view)
        frames.append(out.image)
        landmarks.append(out.landmarks_2d)
        poses.append((view.yaw, view.pitch, view.roll))
        if heatmaps:
            maps.append(np.zeros(out.image.shape[:2], np.float32) if out.heatmap is None else out.heatmap)
    return ClipRender(np.stack(frames), np.stack(landmarks), np.asarray(poses, np.float64),
                      np.stack(maps) if maps else None)


def clip_row(spec, clip_number: int, view_name: str, dynamics: ClipDynamics, video: bytes, neutral_png: bytes,
             clip: ClipRender, heatmaps: list[bytes] | None = None) -> dict:
    """One row of `generation.columns.clip_features` (class labels as strings); `heatmaps` are the frames' PNGs."""
    demographics = spec.demographics
    f32 = lambda values: np.asarray(values, np.float32).tolist()  # noqa: E731
    optional = {}
    if heatmaps is not None:
        optional["heatmap"] = [{"bytes": png, "path": None} for png in heatmaps]
    return {
        "clip_id": f"{spec.identity_id}_c{clip_number:02d}_{view_name}",
        "identity_id": spec.identity_id,
        "clip_index": clip_number,
        "view": view_name,
        "fps": dynamics.fps,
        "num_frames": dynamics.num_frames,
        "video": {"bytes": video, "path": None},
        "neutral_image": {"bytes": neutral_png, "path": None},
        "pspi": f32(dynamics.pspi),
        "action_units": {name: f32(dynamics.action_units[name]) for name in CLIP_AUS},
        "landmarks_2d": f32(clip.landmarks_2d),
        "head_pose": {axis: f32(clip.head_pose[:, k]) for k, axis in enumerate(HEAD_POSE_AXES)},
        **optional,
        "apex_pspi": dynamics.apex_pspi,
        "episodes": [
            {"onset_start": e.onset_start, "apex_start": e.apex_start, "apex_end": e.apex_end,
             "offset_end": e.offset_end, "apex_pspi": e.apex_pspi} for e in dynamics.episodes
        ],
        "blinks": [{"start": start, "duration": duration} for start, duration in dynamics.blinks],
        "age": demographics.age,
        "age_group": demographics.age_group,
        "gender": demographics.gender,
        "ethnicity": demographics.ethnicity,
    }
