"""Random backgrounds (gradients, smooth noise, out-of-focus stripes and checks, bokeh blobs) so a model cannot learn
from the background. One is drawn per identity and view and shared by its neutral and pain renders."""

from __future__ import annotations

import colorsys

import numpy as np
from scipy import ndimage

BACKGROUND_KINDS = ("gradient", "noise", "pattern", "bokeh")


def _color(rng: np.random.Generator) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.95))
    return np.asarray(rgb, np.float32) * 255


def sample_background(size: int, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """A uint8 (size, size, 3) background of the given kind (random when None)."""
    kind = kind or BACKGROUND_KINDS[rng.integers(len(BACKGROUND_KINDS))]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = _color(rng), _color(rng)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * rng.uniform(0.8, 1.6) + 0.5, 0, 1)
    elif kind == "noise":
        coarse = rng.standard_normal((size // 8 + 1, size // 8 + 1)).astype(np.float32)
        t = ndimage.zoom(ndimage.gaussian_filter(coarse, rng.uniform(1.5, 4.5)), 8, order=1)[:size, :size]
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == "pattern":
        frequency = rng.uniform(3, 14)
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        v = -np.sin(angle) * xx + np.cos(angle) * yy
        stripes = np.sin(2 * np.pi * frequency * u) > 0
        t = (stripes ^ (np.sin(2 * np.pi * frequency * v) > 0)) if rng.random() < 0.5 else stripes
        # wallpaper or fabric behind a face the camera focuses on: muted, and out of focus as a portrait lens leaves
        # a wall a metre or two behind the sitter
        t = ndimage.gaussian_filter(t.astype(np.float32), rng.uniform(3.0, 8.0) * size / 256)
        t = 0.5 + (t - 0.5) * rng.uniform(0.25, 0.6)
    elif kind == "bokeh":
        t = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(6, 18))):
            cx, cy, r = rng.random(), rng.random(), rng.uniform(0.03, 0.15)
            t += rng.uniform(0.3, 1.0) * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
        t = np.clip(ndimage.gaussian_filter(t, size / 90), 0, 1)
    else:
        raise ValueError(f"unknown background kind {kind!r}; known: {', '.join(BACKGROUND_KINDS)}")
    image = a * (1 - t[..., None]) + b * t[..., None]
    image += rng.normal(0, rng.uniform(0, 4), size=image.shape).astype(np.float32)  # sensor-like grain
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
