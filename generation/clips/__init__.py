"""Labelled pain clips (`pain3d clips`): how pain unfolds frame by frame (`dynamics`), rendered through the one
identity path (`rows`), encoded as H.264 (`video`) and written as a dataset folder (`writer`). Ranges and their
sources: docs/clips.md."""

from .config import ClipConfig
from .dynamics import ClipDynamics, Episode, clip_dynamics, head_view
from .video import VideoError, decode_video, encode_video

__all__ = ["ClipConfig", "ClipDynamics", "Episode", "VideoError", "clip_dynamics", "decode_video", "encode_video",
           "head_view"]
