"""Hair and head coverings as geometry: a shell over the scalp with volume, and curtains that fall from it.

The hair of one identity is a surface built on a (azimuth, elevation) grid around the head: each grid direction
takes the head's radius there (from the identity's neutral mesh) plus the style's thickness. Long styles continue
below the widest part of the head as vertical curtains that clear the cheeks, the ears and the neck. Cells over the
face, and below the hairline of short styles, are left out. The same mesh is used for the neutral and every pain
expression of the identity (hair does not move with the face), and the renderer draws it in every pass, so it
occludes the skin in the image, the mask and the heatmap alike.

Coordinates are the face model's: millimetres, y up, +z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .model import FaceModel

# Where the grid is centred: roughly the middle of the skull, between the ears.
HEAD_CENTRE = np.array([0.0, 30.0, 0.0])
NUM_AZIMUTHS, NUM_ELEVATIONS, NUM_FALL_ROWS = 180, 40, 16
# Hair is drawn as one surface for many strands. The strands shade each other, so the hair shows darker than one
# strand's colour: the surface's colour is the strands' (sRGB) times this. Without it, lit grey hair turns into a white
# helmet.
STRAND_SHADOW = 0.72
LOWEST_ELEVATION = -50.0  # degrees; the shell goes no lower (the neck)
FALL_ELEVATION = -12.0  # degrees; long hair leaves the head here and falls straight down

# name: (thickness on top mm, thickness at the sides mm, lowest point y mm or None for no curtain, wave amplitude mm,
#        curl (small-scale volume noise) mm)
HAIR_STYLES: dict[str, tuple[float, float, float | None, float, float]] = {
    "buzz": (1.2, 0.8, None, 0.0, 0.0),
    "short": (9.0, 4.5, None, 0.0, 0.0),
    "medium": (12.0, 8.0, -55.0, 1.5, 0.0),  # a bob to the jaw
    "long_straight": (10.0, 7.0, -175.0, 1.0, 0.0),
    "long_wavy": (13.0, 10.0, -160.0, 6.0, 0.0),
    "curly": (22.0, 18.0, -70.0, 3.0, 4.0),
    "afro": (42.0, 34.0, None, 0.0, 5.0),
    "bun": (6.0, 4.0, None, 0.0, 0.0),  # hair pulled back, plus a bun at the back of the head
    "receding": (6.0, 4.0, None, 0.0, 0.0),
    "balding": (3.0, 3.0, None, 0.0, 0.0),  # a horseshoe at the sides and back
    "bald": (0.0, 0.0, None, 0.0, 0.0),
    "headscarf": (5.0, 6.0, -165.0, 0.0, 0.0),
    "cap": (3.5, 3.0, None, 0.0, 0.0),
}
COVERINGS = ("headscarf", "cap")


@dataclass(frozen=True)
class HairMesh:
    """Geometry drawn over the head: vertices (N, 3) float32 mm, triangles (F, 3) int32, sRGB colours (N, 3)
    0-1, and the material's roughness."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    roughness: float = 0.55


def _directions(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    a, e = np.broadcast_arrays(np.radians(azimuth), np.radians(elevation))
    return np.stack([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)], axis=-1)


def head_radius(points: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray, cone_deg: float = 5.0) -> np.ndarray:
    """For each direction of the (elevation, azimuth) grid (degrees, evenly spaced) from HEAD_CENTRE, the largest
    distance of a head point within about `cone_deg` of it (mm): points are binned to their nearest grid
    direction, each bin keeps its farthest point, and a maximum filter spans the cone. Directions no point is near
    take their neighbours' values."""
    offsets = points - HEAD_CENTRE
    radius = np.linalg.norm(offsets, axis=1)
    point_azimuth = np.degrees(np.arctan2(offsets[:, 0], offsets[:, 2]))
    point_elevation = np.degrees(np.arcsin(np.clip(offsets[:, 1] / np.maximum(radius, 1e-9), -1, 1)))
    step_azimuth, step_elevation = azimuth[1] - azimuth[0], elevation[1] - elevation[0]
    cols = np.round((point_azimuth - azimuth[0]) / step_azimuth).astype(int) % len(azimuth)
    rows = np.round((point_elevation - elevation[0]) / step_elevation).astype(int)
    inside = (rows >= 0) & (rows < len(elevation))
    out = np.full((len(elevation), len(azimuth)), -np.inf)
    np.maximum.at(out, (rows[inside], cols[inside]), radius[inside])
    size = (2 * int(cone_deg // step_elevation) + 1, 2 * int(cone_deg // step_azimuth) + 1)
    out = ndimage.maximum_filter(out, size=size, mode=("nearest", "wrap"))
    empty = ~np.isfinite(out)
    if empty.any():
        _, (r, c) = ndimage.distance_transform_edt(empty, return_indices=True)
        out = out[r, c]
    return out


def ear_vertices(face_model: FaceModel) -> np.ndarray:
    """Indices of the head vertices that belong to the outer ears (found on the mean face: the part of the side of
    the head that stands out, between the top of the ear and the lobe)."""
    head = face_model.region("face", "head_and_neck")
    p = face_model.neutral[head]
    ears = (np.abs(p[:, 0]) > 79.0) & (p[:, 1] > -16.0) & (p[:, 1] < 40.0) & (p[:, 2] > -35.0) & (p[:, 2] < 12.0)
    return head[ears]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode=("nearest", "wrap"))
    return field / max(float(field.std()), 1e-9)


def hairline_y(x: np.ndarray, front_y: float, temple_dip: float, tilt: float = 0.0) -> np.ndarray:
    """Height (mm) of the front hairline across the forehead: `front_y` in the middle, rising by `temple_dip` toward
    the temples (receding corners), and sloping by `tilt` mm per mm across for a side-swept fringe."""
    return front_y - 0.005 * x**2 + temple_dip * np.clip(np.abs(x) / 40.0, 0, 1.3) ** 2 + tilt * x


# The hairline around the side of the head by |azimuth| (degrees from the front): (azimuth, height mm). It turns
# down at the temple corner, runs down to the bottom of the sideburn in front of the ear, arches over the ear and
# meets the nape behind it. Over the forehead (|azimuth| < 40) the front hairline rules.
SIDE_HAIRLINE = ((40.0, 500.0), (50.0, 72.0), (60.0, 40.0), (76.0, 14.0), (84.0, 14.0), (92.0, 42.0), (118.0, 44.0))
NAPE_AZIMUTH = 135.0


def hair_lower_edge(position: np.ndarray, front_y: float, temple_dip: float, nape_y: float, tilt: float = 0.0):
    """The lowest height (mm) hair reaches above each point (..., 3) of the head: the front hairline, the temple
    and sideburn, over the ear, and `nape_y` at the back. Used by the hair geometry and the painted scalp alike."""
    x, z = position[..., 0] - HEAD_CENTRE[0], position[..., 2] - HEAD_CENTRE[2]
    azimuth = np.abs(np.degrees(np.arctan2(x, z)))
    side_azimuths, side_heights = zip(*SIDE_HAIRLINE, (NAPE_AZIMUTH, nape_y), (180.0, nape_y))
    side = np.interp(azimuth, side_azimuths, side_heights)
    return np.minimum(hairline_y(x, front_y, temple_dip, tilt), np.where(azimuth < SIDE_HAIRLINE[0][0], np.inf, side))


def build_hair(
    face_model: FaceModel,
    neutral_vertices: np.ndarray,
    style: str,
    color: tuple[float, float, float],
    front_hairline_y: float,
    rng: np.random.Generator,
    *,
    temple_dip: float = 0.0,
    tilt: float = 0.0,
    volume: float = 1.0,
    length_scale: float = 1.0,
    roughness: float = 0.55,
    grey: float = 0.0,
    grey_rgb: tuple[float, float, float] | None = None,
) -> HairMesh | None:
    """The hair (or head covering) mesh of one identity, or None for a bald head.

    `front_hairline_y` is the height of the hairline at the middle of the forehead (mm) and `tilt` its slope for a
    side-swept fringe (see `hairline_y`); `volume` scales the thickness, `length_scale` the length of falling hair;
    `grey` is the share of strands that have turned `grey_rgb` (salt and pepper); all randomness (waves, strands,
    curls) comes from `rng`.
    """
    if style not in HAIR_STYLES:
        raise ValueError(f"unknown hair style {style!r}; choose one of {', '.join(HAIR_STYLES)}")
    if grey > 0 and grey_rgb is None:
        raise ValueError("grey hair needs grey_rgb, the colour its strands turn")
    top, side, lowest, wave, curl = HAIR_STYLES[style]
    if style == "bald":
        return None
    top, side, curl = top * volume, side * volume, curl * volume

    head = face_model.region("face", "head_and_neck")
    points = np.asarray(neutral_vertices, np.float64)[head]
    skull = np.asarray(neutral_vertices, np.float64)[np.setdiff1d(head, ear_vertices(face_model))]
    landmarks = np.asarray(neutral_vertices, np.float64)[face_model.landmarks]
    brow_top = landmarks[17:27, 1].max()

    azimuth = np.linspace(-180.0, 180.0, NUM_AZIMUTHS, endpoint=False)
    elevation = np.linspace(LOWEST_ELEVATION, 86.0, NUM_ELEVATIONS)
    directions = _directions(azimuth[None, :], elevation[:, None])  # (E, A, 3)
    # the widest point of the skull (ears stand out through short hair) near each direction, smoothed without sinking
    # below the skin
    radius = ndimage.gaussian_filter(head_radius(skull, azimuth, elevation), (0.7, 0.7), mode=("nearest", "wrap")) + 1.0
    skin = HEAD_CENTRE + directions * radius[..., None]  # the head surface under each grid point

    # Thickness: fuller on top, thinner at the sides, thin at every edge so the hair meets the skin.
    curls = np.zeros_like(radius)
    up = np.clip(np.sin(np.radians(elevation))[:, None], 0, 1)
    thickness = side + (top - side) * up + np.zeros_like(radius)
    if curl > 0:
        curls = _smooth_noise(rng, radius.shape, (0.8, 1.2))
        thickness += curl * curls
    if wave > 0:
        thickness += 0.4 * wave * _smooth_noise(rng, radius.shape, (1.5, 2.0))

    # Which grid points carry hair.
    y = skin[..., 1]
    abs_az = np.abs(azimuth)[None, :] + np.zeros_like(radius)
    nape = -30.0 if lowest is None else -50.0  # height (mm) where hair ends at the back: short hair at the nape
    lower = hair_lower_edge(skin, front_hairline_y, temple_dip, nape, tilt)
    if style not in COVERINGS:  # the tips of the front hair hang unevenly, in small locks
        locks = ndimage.gaussian_filter1d(rng.standard_normal(NUM_AZIMUTHS), 1.2, mode="wrap")
        lower = lower - 2.5 * np.abs(locks / max(float(locks.std()), 1e-9))[None, :] * (abs_az < 55)
    if lowest is not None:  # long hair covers the ears and the sides down to where it falls
        lower = np.where(abs_az > 60, np.minimum(lower, -200.0), lower)
    if style in COVERINGS:
        lower = np.where(abs_az < 60, np.maximum(lower, brow_top + (8.0 if style == "headscarf" else 22.0)), lower)
    covered = y > lower
    if style == "balding":
        covered &= ~((y > brow_top + 40) & (abs_az < 135))

    # Taper to the skin near the edge (in grid steps), so the hairline does not float.
    distance = ndimage.distance_transform_edt(np.pad(covered, ((0, 0), (3, 3)), mode="wrap"))[:, 3:-3]
    thickness = np.maximum(thickness, 1.0) * np.clip(distance / 3.0, 0.3, 1.0)
    shell = HEAD_CENTRE + directions * (radius + thickness)[..., None]
    # A smooth edge instead of grid steps: the last bare point below hair slides up to where the edge crosses.
    edge_rows, edge_cols = np.nonzero(~covered[:-1] & covered[1:])
    below, above = y[edge_rows, edge_cols], y[edge_rows + 1, edge_cols]
    fraction = np.clip((lower[edge_rows + 1, edge_cols] - below) / np.maximum(above - below, 1e-6), 0, 0.98)
    shell[edge_rows, edge_cols] += fraction[:, None] * (shell[edge_rows + 1, edge_cols] - shell[edge_rows, edge_cols])
    covered = covered.copy()
    covered[edge_rows, edge_cols] = True

    grid, alive, grid_curls = shell, covered, curls
    if lowest is not None:
        # Curtains: from the fall elevation, straight down to the style's length, clear of cheeks, ears and neck.
        fall_row = int(np.argmin(np.abs(elevation - FALL_ELEVATION)))
        start = shell[fall_row]
        end_y = lowest * length_scale + (1 - length_scale) * float(start[:, 1].mean())
        horizontal_offset = points[:, [0, 2]] - HEAD_CENTRE[[0, 2]]
        sector = np.round((np.degrees(np.arctan2(horizontal_offset[:, 0], horizontal_offset[:, 1])) + 180) / 360
                          * NUM_AZIMUTHS).astype(int) % NUM_AZIMUTHS
        passed = (points[:, 1] < start[:, 1].max()) & (points[:, 1] > end_y - 10)  # what the curtain falls past
        # the ends are uneven: locks of different lengths
        tips = ndimage.gaussian_filter1d(rng.standard_normal(NUM_AZIMUTHS), 1.5, mode="wrap")
        end_y = end_y + 14.0 * np.abs(tips / max(float(tips.std()), 1e-9)) * (lowest < -60)
        reach = np.zeros(NUM_AZIMUTHS)
        np.maximum.at(reach, sector[passed], np.linalg.norm(horizontal_offset[passed], axis=1))
        reach = ndimage.maximum_filter1d(reach, 9, mode="wrap")
        start_reach = np.linalg.norm(start[:, [0, 2]] - HEAD_CENTRE[[0, 2]], axis=1)
        clear = np.maximum(start_reach, reach + side + 2.0)
        heading = np.radians(azimuth)
        ripple = wave * _smooth_noise(rng, (NUM_FALL_ROWS, NUM_AZIMUTHS), (1.0, 1.5))
        curtain = []
        for k in range(1, NUM_FALL_ROWS + 1):
            t = k / NUM_FALL_ROWS
            h = start_reach + (clear - start_reach) * min(1.0, 4 * t) + 8.0 * t + ripple[k - 1]
            curtain.append(np.stack([HEAD_CENTRE[0] + h * np.sin(heading), start[:, 1] + (end_y - start[:, 1]) * t,
                                     HEAD_CENTRE[2] + h * np.cos(heading)], axis=1))
        curtain_alive = np.tile(np.abs(azimuth) > 58, (NUM_FALL_ROWS, 1)) & covered[fall_row]
        grid = np.concatenate([np.stack(curtain[::-1]), shell[fall_row:]], axis=0)
        alive = np.concatenate([curtain_alive, covered[fall_row:]], axis=0)
        grid_curls = np.concatenate([np.zeros((NUM_FALL_ROWS, NUM_AZIMUTHS)), curls[fall_row:]], axis=0)

    vertices, faces = _grid_mesh(grid, alive)
    if style == "bun":
        vertices, faces = _add_bun(vertices, faces, radius, elevation, azimuth, volume)
    colors = _strand_colors(rng, grid.shape[:2], color, style, grey, grey_rgb)
    if style not in COVERINGS:  # one surface stands for many strands that shade each other
        colors *= STRAND_SHADOW
    if curl > 0:  # curls: the tops of the coils catch light, the hollows between them stay dark
        colors *= (0.82 + 0.18 * np.clip(grid_curls, -1.5, 1.5) / 1.5)[..., None]
    colors = colors.reshape(-1, 3)
    colors = np.vstack([colors, np.tile(colors.mean(axis=0), (len(vertices) - len(colors), 1))])  # crown, bun
    used, faces = np.unique(faces, return_inverse=True)  # keep only the vertices some triangle uses
    return HairMesh(vertices[used].astype(np.float32), faces.reshape(-1, 3).astype(np.int32),
                    colors[used].astype(np.float32), roughness)


def _grid_mesh(grid: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles over a (rows, azimuths) grid of points, wrapping in azimuth, for quads whose four corners live;
    a cap vertex closes the top row."""
    rows, cols = alive.shape
    index = np.arange(rows * cols).reshape(rows, cols)
    a, b = index[:-1], np.roll(index[:-1], -1, axis=1)
    c, d = index[1:], np.roll(index[1:], -1, axis=1)
    quads = np.stack([a, b, c, d], axis=-1).reshape(-1, 4)
    live = np.stack([alive[:-1], np.roll(alive[:-1], -1, axis=1), alive[1:], np.roll(alive[1:], -1, axis=1)],
                    axis=-1).reshape(-1, 4)
    count = live.sum(axis=1)
    # whole quads, and along the edge of the hair the triangle of a quad's three living corners, so the hairline
    # runs diagonally across the grid instead of in steps of a whole cell; wound counter-clockwise seen from outside
    # (rows rising, azimuth turning to the left), so the normals the renderer derives point away from the head
    whole = quads[count == 4]
    triangles = [whole[:, [0, 1, 2]], whole[:, [1, 3, 2]]]
    for dead, corners in ((0, [1, 3, 2]), (1, [0, 3, 2]), (2, [0, 1, 3]), (3, [0, 1, 2])):
        triangles.append(quads[(count == 3) & ~live[:, dead]][:, corners])
    faces = np.concatenate(triangles)
    vertices = grid.reshape(-1, 3)
    top = rows - 1
    if alive[top].all() and grid[top, :, 1].mean() > grid[0, :, 1].mean():  # close the crown
        apex = grid[top].mean(axis=0) + np.array([0.0, 2.0, 0.0])
        vertices = np.vstack([vertices, apex])
        ring = index[top]
        faces = np.vstack([faces, np.stack([ring, np.roll(ring, -1), np.full(cols, len(vertices) - 1)], axis=1)])
    return vertices, faces


def _add_bun(vertices, faces, radius, elevation, azimuth, volume):
    """A bun: a slightly flattened sphere at the back of the crown."""
    row = int(np.argmin(np.abs(elevation - 30.0)))
    col = int(np.argmin(np.abs(np.abs(azimuth) - 180.0)))
    direction = _directions(np.array(azimuth[col]), np.array(elevation[row]))
    r = 24.0 * volume
    centre = HEAD_CENTRE + direction * (radius[row, col] + 0.6 * r)
    u = np.linspace(0, np.pi, 12)[:, None]
    v = np.linspace(-np.pi, np.pi, 16, endpoint=False)[None, :]
    u, v = np.broadcast_arrays(u, v)
    sphere = np.stack([np.sin(u) * np.cos(v), np.cos(u), 0.8 * np.sin(u) * np.sin(v)], axis=-1) * r + centre
    bun_vertices, bun_faces = _grid_mesh(sphere, np.ones(sphere.shape[:2], bool))
    return np.vstack([vertices, bun_vertices]), np.vstack([faces, bun_faces + len(vertices)])


def _strand_colors(rng: np.random.Generator, shape: tuple[int, int], color, style: str, grey: float = 0.0,
                   grey_rgb=None) -> np.ndarray:
    """Per-vertex sRGB colour: streaks along the hair (constant down a column, varying across), and a `grey` share
    of the strands turned `grey_rgb` among the pigmented ones (salt and pepper), not a uniform blend."""
    base = np.broadcast_to(np.asarray(color, np.float64), shape + (3,))
    if style in COVERINGS:  # fabric: folds, no strands
        return np.clip(base * (1 + 0.08 * _smooth_noise(rng, shape, (2.0, 3.0)))[..., None], 0, 1)
    streaks = ndimage.gaussian_filter1d(rng.standard_normal(shape[1]), 0.7, mode="wrap")
    streaks /= max(float(streaks.std()), 1e-9)
    shade = 1 + 0.15 * streaks[None, :] + 0.1 * _smooth_noise(rng, shape, (1.5, 0.5))
    if grey > 0:
        # some locks grey sooner than others: each lock's grey share varies around the identity's
        turned = np.clip(grey + 0.35 * np.sqrt(grey * (1 - grey)) * rng.standard_normal(shape[1]), 0, 1)[None, :, None]
        base = base * (1 - turned) + np.asarray(grey_rgb) * turned
    return np.clip(base * shade[..., None], 0, 1)
