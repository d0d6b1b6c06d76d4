"""Hair and head coverings as geometry: a shell over the scalp with volume, and curtains that fall from it.

The hair of one identity is a surface built on a (azimuth, elevation) grid around the head: each grid direction
takes the head's radius there (from the identity's neutral mesh) plus the style's thickness. Long styles continue
below the widest part of the head as vertical curtains that clear the cheeks, the ears and the neck. Cells over the
face, and below the hairline of short styles, are left out. The same mesh is used for the neutral and every pain
expression of the identity (hair does not move with the face), and the renderer draws it in every pass, so it
occludes the skin in the image, the mask and the heatmap alike. What each style is (its thickness, length, waves,
curls, colour rules) is its entry in `hair_styles.HAIR_STYLES`; what one identity asks for is a `HairSpec`.

Coordinates are the face model's: millimetres, y up, +z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..rng import stream
from .hair_styles import GREY_HAIR_RGB, HAIR_STYLES, HairStyle, hair_style
from .model import FaceModel

if TYPE_CHECKING:  # the sampling side imports this package; only the annotation needs it
    from ..sampling.appearance import Appearance

# Where the grid is centred: roughly the middle of the skull, between the ears.
HEAD_CENTRE = np.array([0.0, 30.0, 0.0])
NUM_AZIMUTHS, NUM_ELEVATIONS, NUM_FALL_ROWS = 180, 40, 16
LOWEST_ELEVATION = -50.0  # degrees; the shell goes no lower (the neck)
FALL_ELEVATION = -12.0  # degrees; long hair leaves the head here and falls straight down
# The strand texture (`strand_texture`): texels across the strands by rows from the hair's edge inward; it repeats
# STRAND_REPEATS times around the head. Its column 0 and top row are always opaque (SOLID_TEXCOORD: for a bun, earrings).
STRAND_TEXTURE_SHAPE, STRAND_REPEATS = (16, 256), 8
# A hairline this low above the brows (mm) is a fringe (`sample_appearance` draws 12-22), which falls in locks
# (`fringe_locks`) whose tips part by up to FRINGE_NOTCH_MM.
FRINGE_BELOW_MM, FRINGE_NOTCH_MM = 30.0, 10.0
EDGE_ROWS = 2.5  # grid steps over which the strands thin out toward the hair's edge (hairline, ends): a fuzzy edge
SOLID_TEXCOORD = (0.5 / STRAND_TEXTURE_SHAPE[1], 1.0)


@dataclass(frozen=True)
class HairMesh:
    """Geometry drawn over the head: vertices (N, 3) float32 mm, triangles (F, 3) int32, sRGB colours (N, 3)
    0-1, and the material's roughness. With `strands` (H, W, 4 uint8: RGB multiplies the colours, A is coverage)
    and `texcoords` (N, 2) the surface is a card: the renderer cuts out texels of low coverage (an alpha test)."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    roughness: float = 0.55
    texcoords: np.ndarray | None = None
    strands: np.ndarray | None = None


@dataclass(frozen=True)
class HairSpec:
    """What `build_hair` builds for one identity: a style in `HAIR_STYLES`, the sRGB colour (0-1) it shows (the
    strands', or a covering's fabric), the height of the front hairline above the top of the brows (mm), how far it
    recedes at the temples (mm) and slopes across for a side-swept fringe (`tilt`, mm per mm), how much thicker
    (`volume`) and longer (`length_scale`) the hair is than the style's, and the share of strands turned
    `GREY_HAIR_RGB` (salt and pepper); `thinning` (`Appearance.hair_thinning`) lets the `scalp`'s colour show through
    in patches, most at the crown."""

    style: str = "short"
    color: tuple[float, float, float] = (0.2, 0.15, 0.1)
    hairline_mm: float = 50.0
    temple_dip_mm: float = 0.0
    tilt: float = 0.0
    volume: float = 1.0
    length_scale: float = 1.0
    grey: float = 0.0
    thinning: float = 0.0
    strand_key: int = 0
    scalp: tuple[float, float, float] = (0.75, 0.58, 0.48)

    def __post_init__(self):
        hair_style(self.style)  # an unknown name fails here, naming the choices

    @classmethod
    def of(cls, appearance: Appearance) -> HairSpec:
        """The hair an `appearance` asks for, coloured by its style's colour rule."""
        color, grey = hair_style(appearance.hair_style).surface(
            appearance.hair_rgb, appearance.covering_rgb, appearance.grey_fraction)
        return cls(appearance.hair_style, color, appearance.hairline_mm, appearance.temple_dip_mm,
                   appearance.hairline_tilt, appearance.hair_volume, appearance.hair_length_scale, grey,
                   appearance.hair_thinning, appearance.stream_key, appearance.skin_rgb)


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


def build_hair(face_model: FaceModel, neutral_vertices: np.ndarray, spec: HairSpec,
               rng: np.random.Generator) -> HairMesh | None:
    """The hair (or head covering) mesh `spec` asks for, fitted to one identity's neutral head (mm), or None for a
    bald head. All randomness (waves, locks, strands, curls) comes from `rng`, drawn in the order of the steps."""
    style = HAIR_STYLES[spec.style]
    if style.bald:
        return None
    head = _head_grid(face_model, neutral_vertices)
    thickness, curls = _thickness(style, spec.volume, head, rng)
    lower, parting = _lower_edge(style, spec, head, rng)
    covered = head.skin[..., 1] > lower
    if style.bare_crown:
        covered &= ~((head.skin[..., 1] > head.brow_top + 40) & (head.abs_azimuth < 135))
    shell, covered = _shell(head, thickness, covered, lower)
    grid, alive, grid_curls = shell, covered, curls
    if style.lowest_mm is not None:
        grid, alive, grid_curls = _with_curtains(style, spec, head, shell, covered, curls, rng)
    vertices, faces = _grid_mesh(grid, alive)
    if style.bun:
        vertices, faces = _add_bun(vertices, faces, head.radius, head.elevation, head.azimuth, spec.volume)
    colors = _surface_colors(style, spec, grid_curls, rng)
    if parting.any():  # where a fringe's locks part, the strands between them lie in shadow up from the tips
        near = np.clip(1 - (grid[..., 1] - (head.brow_top + spec.hairline_mm)) / 45.0, 0, 1)
        colors *= (1 - 0.35 * parting[None, :] * near).reshape(-1, 1)
    colors = np.vstack([colors, np.tile(colors.mean(axis=0), (len(vertices) - len(colors), 1))])  # crown, bun
    used, faces = np.unique(faces, return_inverse=True)  # keep only the vertices some triangle uses
    texcoords, strands = None, None
    if not style.covering:  # strands: a texture cut out by the renderer's alpha test; fabric stays whole
        texcoords = _strand_texcoords(alive, len(vertices))[used]
        strands = strand_texture(spec.thinning, stream("hair-strands", spec.strand_key))
    return HairMesh(vertices[used].astype(np.float32), faces.reshape(-1, 3).astype(np.int32),
                    colors[used].astype(np.float32), style.roughness, texcoords, strands)


def _strand_texcoords(alive: np.ndarray, count: int) -> np.ndarray:
    """Texture coordinates (count, 2) of the grid's vertices (then `count` minus the grid's: crown, bun): u around the
    head (STRAND_REPEATS texture widths), v from 0 on the hair's edge to 1 `EDGE_ROWS` grid steps inside it."""
    rows, cols = alive.shape
    padded = np.pad(alive, ((1, 1), (0, 0)), constant_values=False)  # the top and bottom rows are edges too
    tiled = np.concatenate([padded, padded, padded], axis=1)  # wraps in azimuth
    distance = ndimage.distance_transform_edt(tiled)[1:-1, cols:2 * cols]
    v = np.clip((distance - 1.0) / EDGE_ROWS, 0, 1)
    u = np.broadcast_to(np.arange(cols) / cols * STRAND_REPEATS, (rows, cols))
    out = np.tile(np.asarray(SOLID_TEXCOORD, np.float64), (count, 1))
    out[: rows * cols] = np.stack([u.ravel(), v.ravel()], axis=1)
    return out.astype(np.float32)


def strand_texture(thinning: float, rng: np.random.Generator) -> np.ndarray:
    """The hair's strands (STRAND_TEXTURE_SHAPE + (4,) uint8 RGBA, image order: the last row is the hair's edge, v = 0,
    the first row v = 1, inside): each strand column a little lighter or darker (RGB, multiplying the surface's
    colour), ending at its own distance from the edge (alpha: a fuzzy hairline and ends). Thinning hair (`thinning`,
    0-1) is sparser there: that share of the strands stops short of the edge band, so the hairline and the ends show
    the scalp. Inside, the hair stays whole: gaps running the hair's whole length would alias into stripes at the
    sizes rendered; the scalp shows through thin hair in the surface's colour instead (`_surface_colors`). Column 0
    and the top row stay opaque (`SOLID_TEXCOORD`)."""
    rows, cols = STRAND_TEXTURE_SHAPE
    ends = rng.uniform(0.0, 1.0, cols) ** 0.7  # where each strand starts to show, as a share of the edge rows
    gone = rng.random(cols) < thinning
    ends[gone] = 1.0
    v = (np.arange(rows)[:, None] + 0.5) / rows
    alpha = v > ends[None, :]
    alpha[-1] = True  # inside (v = 1): whole
    alpha[:, 0] = True
    shade = np.clip(220 + 35 * ndimage.gaussian_filter1d(rng.standard_normal(cols), 0.6, mode="wrap"), 150, 255)
    rgba = np.empty((rows, cols, 4), np.uint8)
    rgba[..., :3] = np.round(shade)[None, :, None]
    rgba[..., 3] = np.where(alpha, 255, 0)
    return np.ascontiguousarray(rgba[::-1])  # image order: row 0 is v = 1 (pyrender uploads it flipped)


@dataclass(frozen=True)
class _HeadGrid:
    """One identity's head seen from HEAD_CENTRE over the (elevation, azimuth) grid (degrees): each direction's
    radius to the widest point of the skull near it and the skin point there (mm), the head's vertices (mm) and the
    height of the top of the brows (mm)."""

    azimuth: np.ndarray  # (A,)
    elevation: np.ndarray  # (E,)
    directions: np.ndarray  # (E, A, 3) unit vectors
    radius: np.ndarray  # (E, A)
    skin: np.ndarray  # (E, A, 3)
    points: np.ndarray  # (N, 3) the head and neck
    brow_top: float

    @property
    def abs_azimuth(self) -> np.ndarray:
        """|azimuth| (degrees from the front) over the grid, (E, A)."""
        return np.abs(self.azimuth)[None, :] + np.zeros_like(self.radius)


def _head_grid(face_model: FaceModel, neutral_vertices: np.ndarray) -> _HeadGrid:
    head = face_model.region("face", "head_and_neck")
    vertices = np.asarray(neutral_vertices, np.float64)
    skull = vertices[np.setdiff1d(head, ear_vertices(face_model))]
    azimuth = np.linspace(-180.0, 180.0, NUM_AZIMUTHS, endpoint=False)
    elevation = np.linspace(LOWEST_ELEVATION, 86.0, NUM_ELEVATIONS)
    directions = _directions(azimuth[None, :], elevation[:, None])
    # the widest point of the skull (ears stand out through short hair) near each direction, smoothed without sinking
    # below the skin
    radius = ndimage.gaussian_filter(head_radius(skull, azimuth, elevation), (0.7, 0.7), mode=("nearest", "wrap")) + 1.0
    return _HeadGrid(azimuth, elevation, directions, radius, HEAD_CENTRE + directions * radius[..., None],
                     vertices[head], vertices[face_model.landmarks][17:27, 1].max())


def _thickness(style: HairStyle, volume: float, head: _HeadGrid, rng: np.random.Generator):
    """The hair's thickness (mm) over the grid, fuller on top and thinner at the sides, with curls and waves; and
    the curls' noise (unit deviation; zero without curls)."""
    top, side, curl = style.top_mm * volume, style.side_mm * volume, style.curl_mm * volume
    curls = np.zeros_like(head.radius)
    up = np.clip(np.sin(np.radians(head.elevation))[:, None], 0, 1)
    thickness = side + (top - side) * up + np.zeros_like(head.radius)
    if curl > 0:
        curls = _smooth_noise(rng, head.radius.shape, (0.8, 1.2))
        thickness += curl * curls
    if style.wave_mm > 0:
        thickness += 0.4 * style.wave_mm * _smooth_noise(rng, head.radius.shape, (1.5, 2.0))
    return thickness, curls


def _lower_edge(style: HairStyle, spec: HairSpec, head: _HeadGrid,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The height (mm) below which a grid point carries no hair: the hairline (the front's tips hanging in uneven
    locks; a fringe's in parted locks), no lower than the covering's front edge, and down past the ears where long
    hair falls. Also how much a fringe's locks part at each azimuth (0-1; 0 everywhere without a fringe)."""
    abs_az = head.abs_azimuth
    parting = np.zeros(NUM_AZIMUTHS)
    nape = -30.0 if style.lowest_mm is None else -50.0  # height (mm) where hair ends at the back (short: the nape)
    lower = hair_lower_edge(head.skin, head.brow_top + spec.hairline_mm, spec.temple_dip_mm, nape, spec.tilt)
    if not style.covering:  # the tips of the front hair hang unevenly, in small locks
        locks = ndimage.gaussian_filter1d(rng.standard_normal(NUM_AZIMUTHS), 1.2, mode="wrap")
        lower = lower - 2.5 * np.abs(locks / max(float(locks.std()), 1e-9))[None, :] * (abs_az < 55)
        if spec.hairline_mm < FRINGE_BELOW_MM:  # a fringe breaks into locks
            front = (abs_az < 55).any(axis=0)
            raised, parting = fringe_locks(rng)
            parting = parting * front
            lower = lower + raised[None, :] * front[None, :]
    if style.lowest_mm is not None:  # long hair covers the ears and the sides down to where it falls
        lower = np.where(abs_az > 60, np.minimum(lower, -200.0), lower)
    if style.covering:  # the fabric's front edge, turning smoothly into its sides (no step at the temples)
        front = head.brow_top + style.covering_front_mm
        lower = np.maximum(lower, lower + np.clip((72.0 - abs_az) / 24.0, 0, 1) * (front - lower))
    return lower, parting


def fringe_locks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A fringe's locks around the grid's azimuths: how far (mm, up) its edge is cut back (each lock, 4-7 grid steps
    wide, ends at its own length, and their tips part in a notch up to FRINGE_NOTCH_MM deep) and how much the locks
    part there (0-1)."""
    raised, parting = np.empty(NUM_AZIMUTHS), np.empty(NUM_AZIMUTHS)
    start = 0
    while start < NUM_AZIMUTHS:
        width = int(rng.integers(4, 8))
        t = (np.arange(width) + 0.5) / width  # across the lock, 0 .. 1
        part = (1 - np.sin(np.pi * t)) ** 1.5
        end = min(NUM_AZIMUTHS, start + width)
        raised[start:end] = (rng.uniform(-2.0, 4.0) + FRINGE_NOTCH_MM * part)[: end - start]
        parting[start:end] = part[: end - start]
        start = end
    return raised, parting


def _shell(head: _HeadGrid, thickness: np.ndarray, covered: np.ndarray, lower: np.ndarray):
    """The hair's outer surface over the grid (E, A, 3 mm), tapering to the skin near its edge so the hairline does
    not float, and the covered grid points with the edge made smooth."""
    # taper over the last grid steps
    distance = ndimage.distance_transform_edt(np.pad(covered, ((0, 0), (3, 3)), mode="wrap"))[:, 3:-3]
    thickness = np.maximum(thickness, 1.0) * np.clip(distance / 3.0, 0.3, 1.0)
    shell = HEAD_CENTRE + head.directions * (head.radius + thickness)[..., None]
    # A smooth edge instead of grid steps: the last bare point below hair slides up to where the edge crosses.
    y = head.skin[..., 1]
    edge_rows, edge_cols = np.nonzero(~covered[:-1] & covered[1:])
    below, above = y[edge_rows, edge_cols], y[edge_rows + 1, edge_cols]
    fraction = np.clip((lower[edge_rows + 1, edge_cols] - below) / np.maximum(above - below, 1e-6), 0, 0.98)
    shell[edge_rows, edge_cols] += fraction[:, None] * (shell[edge_rows + 1, edge_cols] - shell[edge_rows, edge_cols])
    covered = covered.copy()
    covered[edge_rows, edge_cols] = True
    return shell, covered


def _with_curtains(style: HairStyle, spec: HairSpec, head: _HeadGrid, shell: np.ndarray, covered: np.ndarray,
                   curls: np.ndarray, rng: np.random.Generator):
    """Long hair: the grid from the fall elevation up, below it curtains falling straight down to the style's
    length, clear of the cheeks, ears and neck. The grid (rows, A, 3), which points live, and the curls there."""
    azimuth, points = head.azimuth, head.points
    fall_row = int(np.argmin(np.abs(head.elevation - FALL_ELEVATION)))
    start = shell[fall_row]
    end_y = style.lowest_mm * spec.length_scale + (1 - spec.length_scale) * float(start[:, 1].mean())
    horizontal_offset = points[:, [0, 2]] - HEAD_CENTRE[[0, 2]]
    sector = np.round((np.degrees(np.arctan2(horizontal_offset[:, 0], horizontal_offset[:, 1])) + 180) / 360
                      * NUM_AZIMUTHS).astype(int) % NUM_AZIMUTHS
    passed = (points[:, 1] < start[:, 1].max()) & (points[:, 1] > end_y - 10)  # what the curtain falls past
    # the ends of hair are uneven, locks of different lengths; a covering's hem is straight
    tips = ndimage.gaussian_filter1d(rng.standard_normal(NUM_AZIMUTHS), 1.5, mode="wrap")
    end_y = end_y + 14.0 * np.abs(tips / max(float(tips.std()), 1e-9)) * (style.lowest_mm < -60 and not style.covering)
    reach = np.zeros(NUM_AZIMUTHS)
    np.maximum.at(reach, sector[passed], np.linalg.norm(horizontal_offset[passed], axis=1))
    reach = ndimage.maximum_filter1d(reach, 9, mode="wrap")
    start_reach = np.linalg.norm(start[:, [0, 2]] - HEAD_CENTRE[[0, 2]], axis=1)
    clear = np.maximum(start_reach, reach + style.side_mm * spec.volume + 2.0)
    heading = np.radians(azimuth)
    ripple = style.wave_mm * _smooth_noise(rng, (NUM_FALL_ROWS, NUM_AZIMUTHS), (1.0, 1.5))
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
    return grid, alive, grid_curls


def _surface_colors(style: HairStyle, spec: HairSpec, grid_curls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sRGB colour (0-1) of every grid point, (rows x A, 3): the strands (or the fabric), shaded."""
    colors = _strand_colors(rng, grid_curls.shape, spec.color, style, spec.grey) * style.shadow
    if style.curl_mm * spec.volume > 0:  # curls: the tops of the coils catch light, the hollows between them stay dark
        colors *= (0.82 + 0.18 * np.clip(grid_curls, -1.5, 1.5) / 1.5)[..., None]
    elif not style.covering:  # a sheen band across the strands, broken lock by lock; grey hair's is silvery, wider
        rows, cols = grid_curls.shape
        height = np.linspace(0.0, 1.0, rows)[:, None]
        centre = 0.72 + 0.06 * ndimage.gaussian_filter1d(rng.standard_normal(cols), 2.0, mode="wrap")[None, :]
        locks = np.clip(0.7 + 0.5 * ndimage.gaussian_filter1d(rng.standard_normal(cols), 0.8, mode="wrap"), 0, 1.4)
        band = np.exp(-(((height - centre) / (0.06 + 0.05 * spec.grey)) ** 2)) * locks[None, :]
        sheen = np.array([0.9, 0.93, 1.0]) * spec.grey + np.asarray(spec.color) * (1 - spec.grey)
        colors += (0.12 + 0.16 * spec.grey) * band[..., None] * (sheen - 0.5 * colors)
    if spec.thinning > 0 and not style.covering:  # the scalp shows through thin hair, in patches, most at the crown
        rows = grid_curls.shape[0]
        crown = np.linspace(0.4, 1.0, rows)[:, None]
        patches = np.clip(0.6 + 0.8 * _smooth_noise(rng, grid_curls.shape, (2.0, 3.0)), 0, 1)
        show = np.clip(1.4 * spec.thinning * crown * patches, 0, 0.6)
        colors += show[..., None] * (0.85 * np.asarray(spec.scalp) - colors)
    return np.clip(colors, 0, 1).reshape(-1, 3)


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


def _strand_colors(rng: np.random.Generator, shape: tuple[int, int], color, style: HairStyle,
                   grey: float = 0.0) -> np.ndarray:
    """Per-vertex sRGB colour: streaks along the hair (constant down a column, varying across), and a `grey` share
    of the strands turned `GREY_HAIR_RGB` among the pigmented ones (salt and pepper), not a uniform blend; a
    covering's fabric shows folds instead."""
    base = np.broadcast_to(np.asarray(color, np.float64), shape + (3,))
    if style.covering:  # fabric: folds, no strands
        return np.clip(base * (1 + 0.08 * _smooth_noise(rng, shape, (2.0, 3.0)))[..., None], 0, 1)
    streaks = ndimage.gaussian_filter1d(rng.standard_normal(shape[1]), 0.7, mode="wrap")
    streaks /= max(float(streaks.std()), 1e-9)
    shade = 1 + 0.15 * streaks[None, :] + 0.1 * _smooth_noise(rng, shape, (1.5, 0.5))
    if grey > 0:
        # some locks grey sooner than others: each lock's grey share varies around the identity's
        turned = np.clip(grey + 0.35 * np.sqrt(grey * (1 - grey)) * rng.standard_normal(shape[1]), 0, 1)[None, :, None]
        base = base * (1 - turned) + np.asarray(GREY_HAIR_RGB) * turned
    return np.clip(base * shade[..., None], 0, 1)
