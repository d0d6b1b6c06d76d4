"""Camera views and the camera-fixed lighting: the one owner of the view names (a leaf: the dataset schema reads
them without loading the renderer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    """A camera orbiting the head. `yaw` > 0 moves the camera toward the subject's left (+x); `pitch` > 0 looks
    from above. Degrees."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0


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
