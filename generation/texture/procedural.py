"""The procedural skin texture backend (the CPU default) and `SkinTexture`, what every backend returns.

It paints an identity's `Appearance` onto the skin UV atlas with 3D rules (hairline, brows, stubble, wrinkles,
age spots), maps how rough the surface is (the sheen of the skin, moist lips, matte hair and cloth) and gives
per-vertex colours for the parts that are not skin (eyes, teeth, mouth).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy import ndimage

from ..face.eyelashes import STRIPS_PER_LID, lash_texture
from ..face.geometry import smoothstep
from ..face.hair import hair_lower_edge
from ..face.hair_styles import hair_style
from ..face.model import FaceModel
from ..facs import ACTION_UNITS
from ..render import SKIN_ROUGHNESS, region_vertex_colors
from ..rng import stream
from ..sampling.appearance import GREY_HAIR_RGB, NECKLINES, Appearance, BrowShape
from .uv_atlas import UVAtlas, build_uv_atlas


@dataclass(frozen=True)
class Creases:
    """How an identity's skin relief changes with the expression, inside the atlas `window` around every crease: the
    relief at rest (height, mm), the crease each action unit folds into it at full intensity (mm, negative in a
    crease), and the atlas's `surface_frame` there. `changes` (within the window) is where the normal map can
    change: the creases and their neighbours."""

    rest: np.ndarray
    by_action_unit: dict[str, np.ndarray]
    frame: dict[str, np.ndarray]
    window: tuple[slice, slice]
    changes: tuple[slice, slice]

    @classmethod
    def around(cls, rest: np.ndarray, by_action_unit: dict[str, np.ndarray], frame: dict[str, np.ndarray]) -> Creases:
        """Creases given over the whole atlas, kept only in the window that holds them (two texels wider: a normal
        is the slope between its neighbours)."""
        found = np.nonzero(np.any([crease != 0 for crease in by_action_unit.values()], axis=0))
        window, changes = [], []
        for where, size in zip(found, rest.shape):
            low, high = max(where.min() - 2, 0), min(where.max() + 3, size)
            window.append(slice(low, high))
            changes.append(slice(max(where.min() - 1, 0) - low, min(where.max() + 2, size) - low))
        window = tuple(window)
        return cls(rest[window].copy(), {name: crease[window].copy() for name, crease in by_action_unit.items()},
                   {name: value[window] for name, value in frame.items()}, window, tuple(changes))  # frame: shared

    def normal_map(self, rest_normal: np.ndarray, action_units: Mapping[str, float]) -> np.ndarray | None:
        """`rest_normal` (the normal map at rest) on the skin showing `action_units` (name -> FACS intensity), or
        None when none of them creases the skin. Only the window is recomputed, with the same result as over the
        whole atlas."""
        height = None
        for name, crease in self.by_action_unit.items():
            weight = float(action_units.get(name, 0.0)) / ACTION_UNITS[name].max_intensity
            if weight > 0:
                height = (self.rest if height is None else height) + weight * crease
        if height is None:
            return None
        out = rest_normal.copy()
        out[self.window][self.changes] = normal_map(self.frame, height)[self.changes]
        return out


@dataclass(frozen=True)
class SkinTexture:
    albedo: np.ndarray  # (H, 2H, 3) uint8 sRGB over the UV atlas
    vertex_colors: np.ndarray  # (V, 3) float32 sRGB 0-1 for non-skin geometry (eyes, teeth, mouth interior)
    normal: np.ndarray | None = None  # (H, 2H, 3) uint8 tangent-space normal map (wrinkles, pores), or None
    creases: Creases | None = None  # expression wrinkles, with the relief; None without relief
    lash_strips: int = STRIPS_PER_LID  # eyelash strips drawn on each upper lid (`face.eyelashes`): 1 sparse .. 3 full
    roughness: np.ndarray | None = None  # (H, 2H) uint8 surface roughness (0-255 for 0-1), or None: `SKIN_ROUGHNESS`
    lashes: np.ndarray | None = None  # the eyelash cards' RGBA texture (`face.eyelashes.lash_texture`), or None

    def expressing(self, action_units: Mapping[str, float]) -> SkinTexture:
        """This texture on the face showing `action_units`: the wrinkles the expression folds into the skin (frown
        lines, crow's feet, nose and nasolabial creases) deepen its normal map. The albedo stays the same object,
        so a renderer keeps it uploaded. The texture itself when nothing creases."""
        normal = None if self.creases is None else self.creases.normal_map(self.normal, action_units)
        return self if normal is None else replace(self, normal=normal)


# ----------------------------------------------------------------------------------------------- geometry helpers
def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (N,) from 2-D points to segment ab, and the position t in 0-1 along it."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1), t


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to a polyline and the arc-length fraction (0 at line[0], 1 at line[-1]) of the nearest point."""
    lengths = np.linalg.norm(np.diff(line, axis=0), axis=1)
    starts = np.concatenate([[0.0], np.cumsum(lengths)]) / lengths.sum()
    best = np.full(len(points), np.inf)
    where = np.zeros(len(points))
    for k in range(len(line) - 1):
        d, t = _segment_distance(points, line[k], line[k + 1])
        closer = d < best
        best[closer] = d[closer]
        where[closer] = starts[k] + t[closer] * (starts[k + 1] - starts[k])
    return best, where


def _noise3d(rng: np.random.Generator, position: np.ndarray, wavelength_mm: float, waves: int = 24,
             where: np.ndarray | None = None) -> np.ndarray:
    """Smooth noise of unit standard deviation defined on the 3-D surface (a sum of random plane waves), so it
    stays continuous across UV seams. With a boolean `where`, it is evaluated there only (0 elsewhere): the same
    values, for the cost of the region."""
    directions = rng.standard_normal((waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = directions * (2 * np.pi / wavelength_mm) * rng.uniform(0.7, 1.3, size=(waves, 1))
    phase = rng.uniform(0, 2 * np.pi, size=waves)
    points = position if where is None else position[where]
    values = (np.cos(points @ k.T.astype(np.float32) + phase.astype(np.float32)).sum(axis=-1) / np.sqrt(waves / 2))
    if where is None:
        return values.astype(np.float32)
    out = np.zeros(position.shape[:-1], np.float32)
    out[where] = values
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth noise of unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


# ----------------------------------------------------------------------------------------------- the backend
class ProceduralTexturer:
    """Paints skin tone, pores and blotches, lips, brows, a hair cap, stubble, redness and age cues (wrinkles,
    spots, greying) onto the UV atlas with 3D rules anchored on the 68 landmarks of the mean face."""

    def __init__(self, face_model: FaceModel, atlas_size: int = 512, device: str | None = None, relief: bool = True):
        self.face_model = face_model  # `device` is accepted like every backend's and unused: this one is numpy
        self.relief = relief  # paint a normal map of wrinkles and pores, and map the skin's sheen (roughness)
        self.atlas: UVAtlas = build_uv_atlas(face_model, atlas_size)
        self._frame = surface_frame(self.atlas) if relief else None
        self.landmarks = face_model.neutral[face_model.landmarks].astype(np.float64)
        self._masks = self._static_masks()

    def neckline(self, name: str, position: np.ndarray) -> np.ndarray:
        """Height (mm) below which clothing covers the body: at the base of the neck behind and at the sides, and
        dipping at the front by the neckline's depth, rounded (crew, scoop) or pointed (V)."""
        x, z = position[..., 0], position[..., 2]
        base = self.landmarks[8, 1] - 48.0  # the base of the neck at the front, below the chin
        front = smoothstep(-10.0, 25.0, z)
        across = np.clip(1 - np.abs(x) / 40.0, 0, 1) if name == "v" else np.clip(1 - (x / 45.0) ** 2, 0, 1)
        return np.minimum(base + 0.004 * x**2 + 8.0 * (1 - front) - front * NECKLINES[name] * across, base + 16.0)

    def beard(self, style: str, position: np.ndarray) -> np.ndarray:
        """Coverage (0-1) of a grown `style` of facial hair (see `BEARDS`) over the atlas, before the beard zone:
        the moustache over the upper lip, the goatee around the mouth and chin, the full beard everywhere."""
        lm = self.landmarks
        x, y = position[..., 0], position[..., 1]
        mouth_half = (lm[54, 0] - lm[48, 0]) / 2
        moustache = (1 - smoothstep(mouth_half + 2, mouth_half + 6, np.abs(x))) * smoothstep(lm[51, 1] - 1, lm[51, 1] + 1, y)
        if style == "moustache":
            return moustache
        goatee = np.maximum(moustache, (1 - smoothstep(mouth_half - 2, mouth_half + 3, np.abs(x))) * (y < lm[51, 1]))
        if style == "goatee":
            return goatee
        return np.ones_like(x)

    # -- masks that do not depend on the identity
    def _static_masks(self) -> dict[str, np.ndarray]:
        atlas, lm = self.atlas, self.landmarks
        pos = np.nan_to_num(atlas.position)
        xy = pos[..., :2].reshape(-1, 2)
        skin = atlas.region_mask("face", "head_and_neck")
        frontal = atlas.normal[..., 2] > 0.15
        shape = atlas.region.shape
        lips_polygon = PolygonPath(lm[48:60, :2])
        lips = lips_polygon.contains_points(xy).reshape(shape) & skin & (pos[..., 2] > lm[48, 2] - 6) & frontal
        masks = {"skin": skin, "lips": ndimage.gaussian_filter(lips.astype(np.float32), 1.2 * atlas.size / 512)}
        masks["sheen"] = sheen_zone(pos, lm) * skin * frontal
        for side in ("right", "left"):  # around each outer eye corner, where crow's feet fan out
            masks[f"eye_corner_{side}"] = _eye_corner_polar(pos, lm, side)
        # distances used by the identity-dependent painting, in mm
        for name, line in {
            "brow_right": lm[[21, 20, 19, 18, 17]],
            "brow_left": lm[[22, 23, 24, 25, 26]],
            "lid_right": lm[[36, 37, 38, 39]],
            "lid_left": lm[[42, 43, 44, 45]],
            "lower_lid_right": lm[[39, 40, 41, 36]],
            "lower_lid_left": lm[[45, 46, 47, 42]],
            "fold_right": nasolabial_fold(lm, "right"),
            "fold_left": nasolabial_fold(lm, "left"),
            # marionette lines from each mouth corner down toward the jaw
            "marionette_right": np.array([lm[48] + [-1.5, -2.0, 0], lm[48] + [-5.0, -20.0, 0]]),
            "marionette_left": np.array([lm[54] + [1.5, -2.0, 0], lm[54] + [5.0, -20.0, 0]]),
            # an eyeliner wing past each outer eye corner
            "wing_right": np.array([lm[36], lm[36] + [-4.5, 2.0, 0]]),
            "wing_left": np.array([lm[45], lm[45] + [4.5, 2.0, 0]]),
        }.items():
            offset = np.array([0.0, -1.5 if "brow" in name else 0.0])  # brow landmarks sit on the top edge
            d, t = _polyline_distance(xy, line[:, :2] + offset)
            front = frontal & (pos[..., 2] > lm[0, 2] - 5)
            masks[f"{name}_d"] = np.where(front, d.reshape(shape), np.inf)
            masks[f"{name}_t"] = t.reshape(shape)
        # where any eyebrow can lie (the widest draws of `sample_brows` reach about 14 mm from the landmarks):
        # each identity's brows are measured there only
        brow_y = lm[17:27, 1]
        near = (np.abs(pos[..., 0]) < np.abs(lm[17:27, 0]).max() + 8) & (pos[..., 1] > brow_y.min() - 18)
        window = np.flatnonzero(near & (pos[..., 1] < brow_y.max() + 16) & frontal & (pos[..., 2] > lm[0, 2] - 5))
        masks["brow_window"], masks["brow_window_xy"] = window, pos[..., :2].reshape(-1, 2)[window]
        # the creases of each action unit at full intensity, before age deepens them
        masks["creases"] = expression_creases(masks, pos, lm)
        return masks

    def brows(self, shape: BrowShape) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per side, the distance (mm) of every texel to the top edge of the eyebrow of `shape` and the fraction
        along it (0 at the inner end) of the nearest point; infinite away from the brows."""
        window, xy, size = self._masks["brow_window"], self._masks["brow_window_xy"], self._masks["skin"].shape
        out = {}
        for side in ("right", "left"):
            d, t = np.full(size, np.inf), np.zeros(size)
            line = brow_line(self.landmarks, side, shape)[:, :2] + (0.0, -1.5)  # landmarks sit on the top edge
            d.flat[window], t.flat[window] = _polyline_distance(xy, line)
            out[side] = d, t
        return out

    def __call__(self, appearance: Appearance, rng: np.random.Generator, **_mesh) -> SkinTexture:
        """The texture of `appearance`, painted layer by layer. All its randomness comes from `rng`, which gives one
        key: each layer draws from its own named stream of it (`_Painting.stream`), so a layer's draws never shift
        another's, and a caller drawing from `rng` afterwards is not moved by how much the painting draws. The mesh
        and demographics keyword arguments of the protocol are not needed."""
        a, masks = appearance, self._masks
        paint = _Painting.start(self.atlas, a, int(rng.integers(2**63)))
        thin = self._paint_skin(paint)
        self._paint_age(paint)
        grown = self._paint_beard(paint)
        self._paint_eyes(paint)
        self._paint_brows(paint)
        cap = self._paint_hair_cap(paint)
        clothed = self._paint_clothing(paint)
        # how rough the surface is: skin shines where it is oily (by the person's sheen), lips are moist, the hair
        # painted on the scalp, a grown beard and cloth are matte
        roughness = SKIN_ROUGHNESS - a.skin_sheen * (SHEEN_OVERALL + SHEEN_DEPTH * masks["sheen"]) * masks["skin"]
        for rough, cover in ((LIP_ROUGHNESS, masks["lips"] * thin), (HAIR_ROUGHNESS, np.maximum(cap, grown)),
                             (CLOTH_ROUGHNESS, clothed)):
            roughness += (rough - roughness) * np.clip(cover, 0, 1)
        # inside the mouth and the eye sockets
        albedo, relief = paint.albedo, paint.relief
        albedo[self.atlas.region_mask("mouth_socket")] = (0.32, 0.10, 0.10)
        albedo[self.atlas.region_mask("eye_socket")] = (0.55, 0.36, 0.34)
        image = (np.clip(albedo, 0, 1) * 255 + 0.5).astype(np.uint8)
        return SkinTexture(
            albedo=image,
            vertex_colors=region_vertex_colors(self.face_model, iris=a.iris_rgb, age_factor=a.age_factor, lashes=a.lash_rgb),
            lash_strips=a.lash_strips,
            lashes=lash_texture(*a.lash_fringe, paint.stream("lashes")) if self.relief else None,
            roughness=(np.clip(roughness, 0, 1) * 255 + 0.5).astype(np.uint8) if self.relief else None,
            normal=None if relief is None else normal_map(self._frame, relief),
            creases=None if relief is None else Creases.around(relief, {
                # young skin folds too and smooths out again; old skin creases deeper
                name: ((0.6 + 0.9 * a.skin_age) * crease).astype(np.float32) * (1 - np.maximum(grown, clothed))
                for name, crease in masks["creases"].items()
            }, self._frame),
        )

    def _paint_skin(self, paint: _Painting) -> np.ndarray:
        """Skin tone with low-frequency blotches and fine pores, redness on the cheeks, nose and ears, and the lips
        (lipstick, thinning with age). Returns where the lips' colour reaches (0-1)."""
        lm, masks, a, pos, shape = self.landmarks, self._masks, paint.appearance, paint.position, paint.shape
        x, y = pos[..., 0], pos[..., 1]
        albedo = np.broadcast_to(paint.skin_rgb, shape + (3,)).copy()
        # low-frequency blotchiness and fine pores
        skin_rng = paint.stream("skin")
        albedo *= (1 + 0.035 * _noise3d(skin_rng, pos, 25.0)
                   + 0.02 * _noise(skin_rng, shape, 0.8 * paint.px))[..., None]
        # redness on cheeks, nose and ears; lips
        redness = np.zeros(shape, np.float32)
        for centre, radius, weight in (
            ((lm[2] + lm[31]) / 2, 16.0, 0.8), ((lm[14] + lm[35]) / 2, 16.0, 0.8), (lm[30], 9.0, 0.6),
        ):
            redness += weight * np.exp(-np.sum((pos - centre) ** 2, axis=-1) / (2 * radius**2))
        redness += 0.5 * ((np.abs(x) > 68) & (y > lm[2, 1]) & (y < lm[19, 1]))  # ears
        albedo += (redness * 0.045)[..., None] * np.array([1.0, -0.45, -0.35], np.float32)
        lip_rgb = paint.skin_rgb * np.array([0.86, 0.64, 0.64]) + np.array([0.04, 0.0, 0.0]) * (0.5 + a.lip_redness)
        if a.lipstick > 0:
            lip_rgb = (1 - a.lipstick) * lip_rgb + a.lipstick * np.asarray(a.lipstick_rgb, np.float32)
        # lips thin with age: the colour withdraws toward the mouth line
        mouth_y = (lm[62, 1] + lm[66, 1]) / 2
        reach = np.where(y > mouth_y, (y - mouth_y) / (lm[51, 1] - mouth_y), (mouth_y - y) / (mouth_y - lm[57, 1]))
        thin = 1 - smoothstep(1.0 - 0.5 * a.age_factor, 1.1 - 0.45 * a.age_factor, reach)
        paint.albedo = _mix(albedo, lip_rgb, masks["lips"] * thin * (0.55 + 0.35 * max(a.lip_redness, a.lipstick)))
        return thin

    def _paint_age(self, paint: _Painting) -> None:
        """Age, from the person's one age model (`Appearance.skin_age`, `lines`): the skin relief (wrinkles, folds,
        bags, pores), whose creases also darken the albedo (they hold shadow and dirt: the painted lines are the
        relief's own lines, at the same places and spacing), darker eye surroundings and nasolabial folds, and age
        spots. The relief is kept for the normal map with relief on."""
        lm, masks, pos, shape, trng = self.landmarks, self._masks, paint.position, paint.shape, paint.stream("age")
        a = paint.appearance
        age = a.skin_age
        relief, creases = skin_relief(masks, pos, lm, a, paint.stream("relief"), paint.px)
        relief, creases = relief * masks["skin"], creases * masks["skin"]
        shade = np.zeros(shape, np.float32)
        for side in ("right", "left"):
            shade += 0.06 * (0.4 + age) * np.exp(-((masks[f"lower_lid_{side}_d"] - 5.0) ** 2) / 8.0)
            shade += (0.03 + 0.12 * age) * np.exp(-(masks[f"fold_{side}_d"] ** 2) / (2.0 + 3.0 * age))
        # the fine lines of the relief (forehead, frown lines, crow's feet, cheeks, upper lip) hold shadow and dirt:
        # the painted lines are the relief's own; the broad folds and bags are left to the normal map's shading
        shade += CREASE_SHADE * (1 - np.exp(-creases / CREASE_SHADE_MM))
        paint.albedo *= (1 - np.clip(0.75 * shade, 0, 0.6))[..., None]
        if self.relief:
            paint.relief = relief
        # sun spots (lentigines) from about 55, where the sun reaches most: the forehead, temples, cheeks and nose,
        # less the lower face and neck
        if age > 0.45:
            spots = (_noise(trng, shape, 2.5 * paint.px) > 3.0 - 0.6 * (age - 0.45)).astype(np.float32)
            sunlit = 0.35 + 0.65 * smoothstep(lm[33, 1] - 20, lm[33, 1], pos[..., 1])
            spots = ndimage.gaussian_filter(spots, 1.0) * (masks["skin"] & (pos[..., 2] > lm[0, 2] - 20)) * sunlit
            paint.albedo = _mix(paint.albedo, paint.skin_rgb * np.array([0.72, 0.6, 0.5]), np.clip(spots * 1.5, 0, 0.7))

    def _paint_beard(self, paint: _Painting) -> np.ndarray:
        """A stubble shadow, then a moustache, goatee or full beard of real hair in the hair's colour, standing off
        the skin in the relief. Returns the grown beard's coverage (0-1)."""
        lm, masks, a = self.landmarks, self._masks, paint.appearance
        pos, shape, px = paint.position, paint.shape, paint.px
        x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
        grown = np.zeros(shape, np.float32)
        if not (a.beard_density > 0 or a.beard_style):
            return grown
        upper = lm[33, 1] - 2 - 0.3 * np.abs(x)  # the beard line drops toward the cheeks
        beard_zone = smoothstep(lm[8, 1] - 28, lm[8, 1] - 12, y) * (1 - smoothstep(upper - 10, upper, y))
        beard_zone *= 1 - smoothstep(lm[1, 1] - 4, lm[1, 1] + 6, y) * (np.abs(x) > np.abs(lm[48, 0]) + 8)
        beard_zone *= (z > lm[0, 2] - 12) * (1 - np.clip(masks["lips"] * 3, 0, 1))
        beard_rng = paint.stream("beard")  # stubble, then the strands of a grown beard
        if a.beard_density > 0:
            stubble = np.clip(0.6 + 0.4 * _noise(beard_rng, shape, 0.7 * px), 0, 1)
            paint.albedo = _mix(paint.albedo, 0.55 * paint.hair + 0.45 * paint.skin_rgb * 0.75,
                                beard_zone * stubble * 0.55 * a.beard_density)
        if a.beard_style:
            grown = self.beard(a.beard_style, pos) * beard_zone.clip(0, 1) ** 0.5
            strands = np.clip(0.75 + 0.35 * _noise(beard_rng, shape, (0.5 * px, 1.2 * px)), 0, 1)
            paint.albedo = _mix(paint.albedo, paint.hair * (0.7 + 0.3 * strands)[..., None],
                                grown * (0.55 + 0.4 * strands))
            if paint.relief is not None:  # hair stands off the skin: a soft raised, fibrous surface
                paint.relief = paint.relief * (1 - grown) + grown * (0.25 + 0.08 * _noise(beard_rng, shape, 0.6 * px))
        return grown

    def _paint_eyes(self, paint: _Painting) -> None:
        """The upper lash line, under the lashes' cards; make-up: eye shadow on the upper
        lid, eyeliner with a wing, a touch of lower liner, and blush."""
        lm, masks, a, pos = self.landmarks, self._masks, paint.appearance, paint.position
        y = pos[..., 1]
        albedo = paint.albedo
        for side in ("right", "left"):
            d = masks[f"lid_{side}_d"]
            if a.makeup > 0:
                lid = smoothstep(0.5, 2.0, d) * (1 - smoothstep(5.0, 9.0, d)) * (y > lm[37, 1] - 1)
                albedo = _mix(albedo, np.asarray(a.eyeshadow_rgb), lid * 0.35 * a.makeup)
                wing = masks[f"wing_{side}_d"]
                albedo = _mix(albedo, np.array([0.04, 0.03, 0.03]), np.exp(-(wing**2) / 0.5) * 0.9 * a.makeup)
                lower = masks[f"lower_lid_{side}_d"]
                albedo = _mix(albedo, np.array([0.10, 0.08, 0.08]), np.exp(-(lower**2) / 0.4) * 0.4 * a.makeup)
            width = 0.9 + 1.6 * a.makeup  # eyeliner and mascara widen and darken the line
            albedo = _mix(albedo, np.array([0.05, 0.04, 0.04]), np.exp(-(d**2) / width) * (0.85 + 0.1 * a.makeup))
        if a.makeup > 0:
            for centre in ((lm[2] + lm[31]) / 2 + [-4, 4, 0], (lm[14] + lm[35]) / 2 + [4, 4, 0]):
                blush = np.exp(-np.sum((pos - centre) ** 2, axis=-1) / (2 * 14.0**2))
                albedo = _mix(albedo, paint.skin_rgb * np.array([1.05, 0.72, 0.72]), blush * 0.35 * a.makeup)
        paint.albedo = albedo

    def _paint_brows(self, paint: _Painting) -> None:
        """The eyebrows of the person's shape: thicker at the inner end, hair-like streaks, greying with the hair."""
        a, px = paint.appearance, paint.px
        streaks = np.clip(0.88 + 0.16 * _noise(paint.stream("brows"), paint.shape, (0.5 * px, 1.5 * px)), 0, 1)
        # brows grey with the hair, salt and pepper: the lighter hairs of the streaks turn white first
        white = np.clip(a.grey_fraction * (0.75 + 2.0 * (streaks - 0.88)), 0, 1)[..., None]
        brow_hair = (1 - white) * paint.hair_rgb + white * paint.grey * 0.9
        for d, t in self.brows(a.brows).values():
            half = a.brow_thickness_mm / 2 * (1.0 - a.brows.taper * t)
            brow = (1 - smoothstep(0.3 * half, half + 1.6, d)) * (1 - smoothstep(0.85, 1.08, t))
            paint.albedo = _mix(paint.albedo, brow_hair * 0.85, brow * streaks * 0.95)

    def _paint_hair_cap(self, paint: _Painting) -> np.ndarray:
        """The scalp under the hair: the forehead hairline in front, lower at the sides and back, a receding crown for
        balding men, in the hair's colour darkened by its shade. Returns the cap's coverage (0-1)."""
        lm, masks, a = self.landmarks, self._masks, paint.appearance
        pos, shape, px = paint.position, paint.shape, paint.px
        x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
        cap_rng = paint.stream("hair-cap")
        brow_top = lm[17:27, 1].max()
        back_line = lm[2, 1] - 4 - 45 * a.hair_length
        hairline = hair_lower_edge(pos, brow_top + a.hairline_mm + 30 * a.balding, a.temple_dip_mm, back_line,
                                   a.hairline_tilt)
        edge = np.clip(3.0 + 1.5 * _noise3d(cap_rng, pos, 10.0, where=np.abs(y - hairline) < 12), 1.0, 6.0)
        # the painted scalp reaches a few mm below the hair's geometric edge: fine, sparse hairs soften the line
        cap = smoothstep(hairline - 3.0, hairline + edge, y + 1.0 * _noise(cap_rng, shape, 1.0 * px))
        if a.balding > 0.3:
            crown = np.hypot(x, z - (lm[0, 2] - 30)) < 60 * (a.balding - 0.3)
            cap *= 1 - ndimage.gaussian_filter(crown.astype(np.float32), 6) * (y > lm[19, 1] + 60)
        ears = (np.abs(x) > 66) & (y < lm[19, 1] + 12) & (y > lm[3, 1])
        cap *= ~ears
        cap *= masks["skin"]
        # the scalp seen between hairs: the hair's colour, darkened by the hair's shade over it; thin hair (see
        # `Appearance.hair_thinning`) lets more of the skin's own colour through. Under a headscarf or cap: the
        # fabric's colour in its shade, so no hair shows along its edge
        shading = np.clip(0.92 + 0.14 * _noise(cap_rng, shape, (0.7 * px, 3.0 * px)), 0.6, 1.2)
        if hair_style(a.hair_style).covering:
            scalp = 0.6 * np.asarray(a.covering_rgb, np.float32)
        else:
            scalp = _mix(0.6 * paint.hair, 0.85 * paint.skin_rgb, min(1.0, 2.0 * a.hair_thinning))
        paint.albedo = _mix(paint.albedo, scalp * shading[..., None], cap * 0.97)
        return cap

    def _paint_clothing(self, paint: _Painting) -> np.ndarray:
        """Clothing over the shoulders and chest, below a crew, scoop or V neckline, flat in the relief. Returns its
        coverage (0-1)."""
        a, pos, trng = paint.appearance, paint.position, paint.stream("clothing")
        below = self.neckline(a.neckline, pos) - pos[..., 1] + 0.3 * _noise(trng, paint.shape, 2.0 * paint.px)
        clothed = self._masks["skin"] * smoothstep(0.0, 1.5, below)
        fabric = np.asarray(a.clothing_rgb, np.float32) * (1 + 0.07 * _noise3d(trng, pos, 35.0, where=clothed > 0))[..., None]
        paint.albedo = _mix(paint.albedo, fabric, clothed)
        if paint.relief is not None:
            paint.relief = paint.relief * (1 - clothed)
        return clothed


@dataclass
class _Painting:
    """One identity's texture while it is painted: the atlas positions (mm) and shape, the texel scale against a
    512-texel tile, the appearance and its colours (sRGB 0-1: the skin, the hair, the hair greyed by age, full grey),
    the key of the layers' random streams, and the albedo and relief (mm; None without relief) so far."""

    appearance: Appearance
    key: int
    position: np.ndarray
    shape: tuple[int, int]
    px: float
    skin_rgb: np.ndarray
    hair_rgb: np.ndarray
    grey: np.ndarray
    hair: np.ndarray
    albedo: np.ndarray | None = None
    relief: np.ndarray | None = None

    @classmethod
    def start(cls, atlas: UVAtlas, appearance: Appearance, key: int) -> _Painting:
        a = appearance
        hair_rgb, grey = np.asarray(a.hair_rgb, np.float32), np.array(GREY_HAIR_RGB, np.float32)
        return cls(a, key, np.nan_to_num(atlas.position), atlas.region.shape, atlas.size / 512,
                   np.asarray(a.skin_rgb, np.float32), hair_rgb, grey,
                   (1 - a.grey_fraction) * hair_rgb + a.grey_fraction * grey)

    def stream(self, layer: str) -> np.random.Generator:
        """The random stream of one layer (`rng.stream("texture-<layer>", key)`)."""
        return stream(f"texture-{layer}", self.key)


# How a fine line of the relief darkens the albedo by its depth (mm): the painted lines are the relief's own. The
# shade grows as 1 - exp(-depth / CREASE_SHADE_MM) up to CREASE_SHADE (before `_paint_age`'s factor 0.75).
CREASE_SHADE, CREASE_SHADE_MM = 0.4, 0.8
# Roughness (0 mirror .. 1 chalk) beside the skin's `SKIN_ROUGHNESS`: the oiliest skin is this much smoother all over
# and this much more where it shines; lips are moist, hair and cloth are matte.
SHEEN_OVERALL, SHEEN_DEPTH = 0.16, 0.18
LIP_ROUGHNESS, HAIR_ROUGHNESS, CLOTH_ROUGHNESS = 0.45, 0.75, 0.85


def sheen_zone(pos: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Where skin shines (0-1) over the atlas positions `pos` (mm): the T-zone of the forehead, nose and chin, where
    the skin is oiliest, and the cheekbones, which catch the light."""
    x, y = pos[..., 0], pos[..., 1]

    def spot(centre, radius):
        return np.exp(-np.sum((pos - centre) ** 2, axis=-1) / (2 * radius**2))

    brow_top = lm[17:27, 1].max()
    forehead = (1 - smoothstep(18.0, 34.0, np.abs(x))) * smoothstep(brow_top - 2, brow_top + 6, y)
    forehead *= 1 - smoothstep(brow_top + 40, brow_top + 55, y)
    nose = spot(lm[30], 9.0) + spot((lm[28] + lm[29]) / 2, 6.0) + spot(lm[27], 7.0)
    cheekbones = sum(spot((lm[jaw] + lm[eye]) / 2 + (inward, -4.0, 0.0), 11.0)
                     for jaw, eye, inward in ((1, 36, 3.0), (15, 45, -3.0)))
    chin = spot(lm[8] + (0.0, 9.0, 0.0), 9.0)
    return np.clip(forehead + nose + 0.7 * cheekbones + 0.6 * chin, 0, 1).astype(np.float32)


def _broken(rng: np.random.Generator, pos: np.ndarray, where: np.ndarray, wavelength_mm: float,
            show: float) -> np.ndarray:
    """Where a line is drawn along its length (0-1): it breaks off and starts again, about a share `show` of it
    drawn."""
    return smoothstep(-0.25, 0.25, _noise3d(rng, pos, wavelength_mm, where=where) + 2.0 * (show - 0.5))


def skin_relief(masks: dict, pos: np.ndarray, lm: np.ndarray, appearance: Appearance, rng: np.random.Generator,
                px: float) -> tuple[np.ndarray, np.ndarray]:
    """Height of the skin surface over the atlas (mm, negative in creases): pores at every age, and with the skin's
    age (`Appearance.skin_age`) the forehead lines, frown lines, crow's feet, nasolabial and marionette folds,
    under-eye bags and neck rings, each family as deep as the person's `lines` say. Lines are few and irregular:
    each forehead furrow and each crow's-foot ray has its own depth and length, some are missing, their spacing
    changes across the face, and they break off and start again. Also returns how deep (mm, positive) the fine
    lines alone are (forehead, frown lines, crow's feet, cheek and upper-lip lines), for the painting to darken."""
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    shape = x.shape
    age, depth = appearance.skin_age, appearance.lines
    height = (0.008 + 0.04 * age) * _noise(rng, shape, 0.6 * px)  # pores and fine texture
    creases = np.zeros(shape, np.float32)
    if age <= 0:
        return height.astype(np.float32), creases
    lines = age**0.7  # lines show from middle age on, then deepen
    late = age**1.5  # crow's feet and bags keep deepening into old age
    front = z > lm[0, 2] - 5
    brow_top, brow_low = lm[17:27, 1].max(), lm[17:27, 1].min()
    # forehead: a few horizontal furrows, wavy, each of its own depth, their spacing wider or closer across the brow
    forehead = smoothstep(brow_top + 5, brow_top + 11, y) * (1 - smoothstep(brow_top + 36, brow_top + 46, y))
    forehead *= front * (1 - smoothstep(38, 48, np.abs(x)))
    inside = forehead > 0
    spacing = appearance.line_spacing_mm * (1 + 0.12 * _noise3d(rng, pos, 60.0, where=inside))
    phase = np.where(inside, (y - brow_top + 1.5 * _noise3d(rng, pos, 45.0, where=inside)) / spacing, 0)
    furrow_depth = rng.uniform(0.25, 1.0, 12) * (rng.random(12) > 0.2)  # some furrows never form
    each = furrow_depth[np.clip(np.floor(phase + 0.5).astype(int), 0, 11)]
    furrows = np.clip(np.cos(2 * np.pi * phase), 0, 1) ** 16 * each * _broken(rng, pos, inside, 35.0, 0.75)
    creases += 0.7 * depth["forehead"] * lines * furrows * forehead
    # frown lines between the brows, one often deeper than the other
    for side, own in zip((-1, 1), rng.uniform(0.4, 1.0, 2)):
        glabella = np.exp(-((x - side * 5.5) ** 2) / 1.2) * smoothstep(brow_low - 6, brow_low, y)
        glabella *= 1 - smoothstep(brow_top + 4, brow_top + 12, y)
        creases += 0.4 * own * depth["frown"] * lines * glabella * front
    for side in ("right", "left"):
        # nasolabial fold: a valley with the cheek bulging above it
        fold = masks[f"fold_{side}_d"]
        height -= (0.25 + 1.6 * depth["fold"] * age) * np.exp(-(fold**2) / (2 * (1.2 + 1.2 * age) ** 2))
        height += 0.5 * depth["fold"] * age * np.exp(-((fold - 5.0) ** 2) / (2 * 3.0**2))
        # under-eye bag and the crease under it
        lid = masks[f"lower_lid_{side}_d"]
        height += (0.6 * lines + 0.9 * late) * depth["bags"] * np.exp(-((lid - 5.0) ** 2) / (2 * 2.2**2))
        height -= 0.4 * depth["bags"] * lines * np.exp(-((lid - 9.0) ** 2) / (2 * 1.6**2))
        # crow's feet fanning out from the outer eye corner: a few rays, each of its own depth and length
        r, angle, lateral = masks[f"eye_corner_{side}"]
        near = lateral & (r < 24)
        turn = angle * 9.0 + 0.6 * _noise3d(rng, pos, 12.0, where=near)
        ray = np.clip(np.floor(turn / (2 * np.pi) + 0.5).astype(int) + 4, 0, 8)
        ray_depth = rng.uniform(0.3, 1.0, 9) * (rng.random(9) > 0.15)
        ray_end = rng.uniform(13.0, 23.0, 9)[ray]
        rays = np.clip(np.cos(turn), 0, 1) ** 8 * ray_depth[ray]
        reach = smoothstep(4, 7, r) * (1 - smoothstep(ray_end - 6, ray_end, r))
        creases += (0.45 * lines + 0.9 * late) * depth["crows_feet"] * rays * lateral * reach
        # marionette fold from the mouth corner down toward the jaw: soft and wide, not a drawn groove
        d = masks[f"marionette_{side}_d"]
        height -= 0.5 * depth["marionette"] * lines * np.exp(-(d**2) / (2 * 2.5**2)) * front
    # rings around the neck
    neck = (y < lm[8, 1] - 18) & (y > lm[8, 1] - 75) & (z > -20)
    height -= 0.5 * lines * neck * np.clip(np.cos(2 * np.pi * (y + 3 * _noise3d(rng, pos, 40.0, where=neck)) / 16.0), 0, 1) ** 6
    creases += fine_lines(masks, pos, lm, late, depth, rng.spawn(1)[0])  # its own stream
    deeper = 1.0 + 1.6 * age  # old skin creases deeper everywhere
    return ((height - creases) * deeper).astype(np.float32), (creases * deeper).astype(np.float32)


def brow_line(lm: np.ndarray, side: str, shape: BrowShape, points: int = 9) -> np.ndarray:
    """The top edge of one eyebrow of `shape` (`points` points, mm, inner end first): the brow landmarks from
    `shape.start` to `shape.end` of their length (continued straight past the tail), raised by the lift and the
    arch, the tail dropping past the peak."""
    base = lm[[21, 20, 19, 18, 17]] if side == "right" else lm[[22, 23, 24, 25, 26]]
    u = np.linspace(shape.start, shape.end, points) * 4  # in landmark steps
    k = np.clip(np.floor(u).astype(int), 0, 3)
    line = base[k] + (u - k)[:, None] * (base[k + 1] - base[k])
    f = u / 4
    arch = shape.arch * np.exp(-(((f - shape.peak) / 0.3) ** 2))
    drop = shape.tail_drop * smoothstep(shape.peak, 1.0, f)
    line[:, 1] += shape.lift + arch - drop
    return line


def nasolabial_fold(lm: np.ndarray, side: str) -> np.ndarray:
    """The nasolabial fold of one side (3 points, mm): from beside the nose wing to beside the mouth corner, then a
    little way down."""
    nostril, corner, outward = (31, 48, -1) if side == "right" else (35, 54, 1)
    return np.array([lm[nostril] + [outward * 6, 2, 0], lm[corner] + [outward * 7, 3, 0], lm[corner] + [outward * 6, -3, 0]])


def fine_lines(masks: dict, pos: np.ndarray, lm: np.ndarray, late: float, families: Mapping[str, float],
               rng: np.random.Generator) -> np.ndarray:
    """Depth (mm, positive in the lines) of the fine lines of thin old skin: broken lines across each cheek that run
    beside the nasolabial fold, and short vertical lines over the upper lip, as deep as the person's `families` of the
    "cheek" and "upper_lip" families say."""
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    depth = np.zeros(x.shape, np.float32)
    if late < 0.05:
        return depth
    cheek_depth, lip_depth = families["cheek"], families["upper_lip"]
    front = z > lm[0, 2] - 5
    for side in ("right", "left"):
        fold = masks[f"fold_{side}_d"]
        # lateral of the fold line (nose wing to beside the mouth corner), below the lower-lid bag, above the jaw
        start, end = nasolabial_fold(lm, side)[:2, :2]
        outward = np.sign(start[0])
        line_x = start[0] + (y - start[1]) / (end[1] - start[1]) * (end[0] - start[0])
        lateral = (outward * (x - line_x) > 0) & (np.abs(x) > abs(start[0]) - 2)  # not the nose
        cheek = lateral & front & np.isfinite(fold)
        region = np.where(cheek, smoothstep(3.0, 6.0, fold) * (1 - smoothstep(16.0, 26.0, fold)), 0.0)
        region *= (1 - smoothstep(lm[41, 1] - 14, lm[41, 1] - 8, y)) * smoothstep(lm[5, 1], lm[5, 1] + 8, y)
        inside = region > 0
        wobble = _noise3d(rng, pos, 14.0, where=inside)
        broken = np.clip(0.4 + _noise3d(rng, pos, 9.0, where=inside), 0, 1)
        furrows = np.clip(np.cos(2 * np.pi * (np.where(inside, fold, 0) + 1.2 * wobble) / 4.5), 0, 1) ** 8
        depth += 0.3 * cheek_depth * late * furrows * broken * region
    lip_top, half_width = lm[50:53, 1].max(), abs(lm[48, 0]) - 4
    upper_lip = front & (np.abs(x) < half_width) & (y > lip_top - 1) & (y < lip_top + 10) & (z > lm[48, 2] - 6)
    fade = np.where(upper_lip, (1 - smoothstep(lip_top + 3, lip_top + 10, y)) * (1 - smoothstep(half_width - 5, half_width, np.abs(x))), 0)
    inside = fade > 0
    lines = np.clip(np.cos(2 * np.pi * (x + 0.8 * _noise3d(rng, pos, 6.0, where=inside)) / 3.2), 0, 1) ** 10
    broken = np.clip(0.3 + _noise3d(rng, pos, 5.0, where=inside), 0, 1)
    depth += 0.3 * lip_depth * late * lines * broken * fade
    return depth.astype(np.float32)


def _eye_corner_polar(pos: np.ndarray, lm: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Around the outer corner of the `side` eye, where crow's feet fan out: the distance (mm) from the corner in
    the front view, the angle above the horizontal, and whether a point lies beyond the corner."""
    corner = lm[36] if side == "right" else lm[45]
    x, y = pos[..., 0] - corner[0], pos[..., 1] - corner[1]
    return np.hypot(x, y), np.arctan2(y, np.abs(x)), x * (1 if side == "left" else -1) > 2


def expression_creases(masks: dict, pos: np.ndarray, lm: np.ndarray) -> dict[str, np.ndarray]:
    """The crease (height, mm, negative in the fold; float64) each action unit presses into the skin at full
    intensity, before age deepens it: AU4 the vertical frown lines between the brows and a fold across the root of
    the nose, AU6 deeper crow's feet and a line under the lower lid, AU7 a finer lower-lid line, AU9 short lines
    across the sides of the nose, AU9, AU10 and AU12 a deeper nasolabial fold. `masks` needs the skin, the fold and
    lower-lid distances and the eye-corner coordinates."""
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    front = (z > lm[0, 2] - 5) * masks["skin"]
    brow_top, brow_low = lm[17:27, 1].max(), lm[17:27, 1].min()
    between = smoothstep(brow_low - 9, brow_low - 2, y) * (1 - smoothstep(brow_top + 2, brow_top + 10, y))
    frown = sum(np.exp(-((x - side * 5.0) ** 2) / (2 * 0.7**2)) for side in (-1, 1)) * between
    root = np.exp(-((y - lm[27, 1] - 1.0) ** 2) / (2 * 0.9**2)) * (1 - smoothstep(5, 9, np.abs(x)))
    nose_side = smoothstep(2.5, 4.5, np.abs(x)) * (1 - smoothstep(9, 12, np.abs(x)))
    nose_side = nose_side * smoothstep(lm[29, 1], lm[29, 1] + 3, y) * (1 - smoothstep(lm[27, 1] - 4, lm[27, 1], y))
    bunny = np.clip(np.cos(2 * np.pi * (y + 0.5 * np.abs(x)) / 3.2), 0, 1) ** 6 * nose_side
    fold, upper_fold, crows, lower_lid, lid_line = (np.zeros_like(x) for _ in range(5))
    for side in ("right", "left"):
        d = masks[f"fold_{side}_d"]
        fold += np.exp(-(d**2) / (2 * 1.3**2))
        upper_fold += np.exp(-(d**2) / (2 * 1.3**2)) * (y > lm[33, 1] - 4)
        r, angle, lateral = masks[f"eye_corner_{side}"]
        rays = np.clip(np.cos(angle * 9.0), 0, 1) ** 8
        crows += rays * lateral * smoothstep(3, 6, r) * (1 - smoothstep(16, 24, r))
        lid = masks[f"lower_lid_{side}_d"]
        lower_lid += np.exp(-((lid - 6.5) ** 2) / (2 * 0.9**2))
        lid_line += np.exp(-((lid - 3.0) ** 2) / (2 * 0.6**2))
    creases = {
        "AU4": -1.0 * (frown + 0.5 * root),
        "AU6": -0.6 * crows - 0.4 * lower_lid,
        "AU7": -0.3 * lid_line,
        "AU9": -0.5 * bunny - 0.5 * upper_fold,
        "AU10": -0.8 * fold,
        "AU12": -0.7 * fold - 0.3 * crows,
    }
    return {name: front * crease for name, crease in creases.items()}


def surface_frame(atlas: UVAtlas) -> dict[str, np.ndarray]:
    """What `normal_map` needs of the atlas alone (a texturer computes it once): the metric of the (u, v) texel
    directions on the surface, and those directions in the shader's tangent frame."""
    position, normal = atlas.position.astype(np.float64), atlas.normal.astype(np.float64)
    du, dv = np.gradient(position, axis=1), np.gradient(position, axis=0)  # mm per texel along u (columns) and v
    e, f, g = (du * du).sum(-1), (du * dv).sum(-1), (dv * dv).sum(-1)
    det = e * g - f * f
    step = np.nanmedian(np.sqrt(e[atlas.covered]))
    valid = np.isfinite(det) & (det > 1e-12) & (e < (4 * step) ** 2) & (g < (4 * step) ** 2)
    du, dv, normal = np.nan_to_num(du), np.nan_to_num(dv), np.nan_to_num(normal)
    tangent = du - normal * (du * normal).sum(-1, keepdims=True)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=-1, keepdims=True), 1e-9)
    bitangent = np.cross(normal, tangent)
    frame = {"valid": valid, "det": np.where(valid, det, 1.0), "e": e, "f": f, "g": g}
    for name, axis in (("t", tangent), ("b", bitangent), ("n", normal)):
        frame[f"u{name}"], frame[f"v{name}"] = (du * axis).sum(-1), (dv * axis).sum(-1)
    frame = {name: np.nan_to_num(value).astype(np.float32) if value.dtype != bool else value
             for name, value in frame.items()}
    return frame


def normal_map(frame: dict[str, np.ndarray], height_mm: np.ndarray) -> np.ndarray:
    """Tangent-space normal map (uint8 RGB) of a height field over the atlas whose `surface_frame` is `frame`, in the
    frame pyrender's shader builds without tangents: x along +u, y = normal x tangent, z along the normal."""
    height = height_mm.astype(np.float32)
    hu, hv = np.gradient(height, axis=1), np.gradient(height, axis=0)
    a = (frame["g"] * hu - frame["f"] * hv) / frame["det"]  # the surface gradient of the height is a du + c dv
    c = (frame["e"] * hv - frame["f"] * hu) / frame["det"]
    # the bent normal (normal - gradient) in the tangent frame
    local = np.stack([-(a * frame["ut"] + c * frame["vt"]), -(a * frame["ub"] + c * frame["vb"]),
                      1 - (a * frame["un"] + c * frame["vn"])], -1)
    local /= np.maximum(np.linalg.norm(local, axis=-1, keepdims=True), 1e-9)
    local = np.where(frame["valid"][..., None], local, np.float32((0.0, 0.0, 1.0)))
    return np.clip((local + 1) / 2 * 255 + 0.5, 0, 255).astype(np.uint8)


def _mix(base: np.ndarray, color, weight: np.ndarray) -> np.ndarray:
    weight = np.clip(weight, 0.0, 1.0)[..., None]
    return base * (1 - weight) + np.asarray(color, np.float32) * weight
