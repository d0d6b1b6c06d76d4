"""A clip's frames as H.264 in MP4, through PyAV (whose wheel carries FFmpeg and libx264: no system FFmpeg).

The encoder runs on one thread with fixed settings and FFmpeg's bit-exact flags, so the same frames give the same
bytes on every run and worker; H.264 decoding is bit-exact by the standard, so the frames decode the same on any
machine. Why H.264 4:4:4 at CRF 13, and what it costs, is measured in docs/clips.md (scripts/bench_clips.py).
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import Pain3DError

CODEC = "libx264"
# full colour resolution: 4:2:0 tops out at 39 dB PSNR even when lossless (the colour edges of face, hair and
# background), 4:4:4 reaches 42 dB at CRF 13 for under 3 kB a frame at 256 px (docs/clips.md)
PIXEL_FORMAT = "yuv444p"
PRESET = "medium"
# one thread (frame threads make the bitstream depend on the thread count), a fixed keyframe interval and no
# scene-cut keyframes, so the bytes depend on the frames alone
X264_PARAMS = "keyint=250:min-keyint=25:scenecut=0"


class VideoError(Pain3DError, ValueError):
    """Bytes that are not a clip's video, or a video whose frame count is not the row's."""


def encode_video(frames: np.ndarray, fps: int, crf: int) -> bytes:
    """uint8 (N, H, W, 3) RGB frames (H, W even) -> MP4 bytes, deterministically."""
    import av

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    num_frames, height, width, _ = frames.shape
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
        stream.codec_context.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact  # no encoder version string in the stream
        stream.options = {"crf": str(crf), "preset": PRESET, "threads": "1", "x264-params": X264_PARAMS}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_video(data: bytes, num_frames: int | None = None) -> np.ndarray:
    """MP4 bytes -> uint8 (N, H, W, 3) RGB; with `num_frames`, a different count is a VideoError."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise VideoError(f"the video bytes do not decode as a clip ({error}); the row or shard is corrupt: "
                         "run `pain3d verify` on the folder") from None
    if num_frames is not None and len(frames) != num_frames:
        raise VideoError(f"the video holds {len(frames)} frames where the row says {num_frames}; the row is "
                         "corrupt: run `pain3d verify` on the folder")
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 frames against their reference (inf when identical)."""
    error = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))
