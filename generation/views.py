"""Camera views and the camera-fixed lighting: the one owner of the view names (a leaf: the dataset schema reads
them without loading the renderer)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_IMAGE_SIZE = 256  # pixels, square renders
IMAGE_SIZE_RANGE = (32, 2048)  # pixels: below, landmarks merge; above, one render outgrows the software rasteriser


def image_size_problem(size: int) -> str | None:
    """Why `size` cannot be an image side, or None."""
    low, high = IMAGE_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
        return f"--image-size must be an integer within {low}-{high} pixels, got {size!r}"
    return None


@dataclass(frozen=True)
class View:
    """A camera orbiting the head. `yaw` > 0 moves the camera toward the subject's left (+x); `pitch` > 0 looks
    from above; `roll` > 0 turns the image counter-clockwise. Degrees. `distance_scale` moves the camera nearer
    (< 1) or farther (> 1) than the default framing."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    distance_scale: float = 1.0

    def jittered(self, roll: float, distance_scale: float) -> "View":
        """The same named view, turned by `roll` degrees and moved by a distance factor (one identity's camera)."""
        return View(self.name, self.yaw, self.pitch, round(self.roll + roll, 3),
                    round(self.distance_scale * distance_scale, 4))


DEFAULT_VIEWS: tuple[View, ...] = (View("frontal", 0.0, 0.0), View("left", 35.0, 5.0), View("right", -35.0, 5.0))


@dataclass(frozen=True)
class Lighting:
    """A key light and a fill light fixed to the camera (so every view is lit alike), plus ambient light.
    Directions are (azimuth, elevation) in degrees relative to the camera's viewing direction."""

    key_direction: tuple[float, float] = (-30.0, 30.0)
    key_intensity: float = 3.2
    fill_direction: tuple[float, float] = (40.0, 5.0)
    fill_intensity: float = 1.3
    ambient: float = 0.35
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fill_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # light bounced off coloured walls, a window, a lamp
