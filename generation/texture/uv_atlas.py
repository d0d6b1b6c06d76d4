"""The skin UV atlas of the face model: which surface point every texel shows.

The atlas packs the two UDIM tiles side by side (see `generation.face.geometry`). For every texel it records the point of
the mean neutral face it covers (mm), the surface normal and the model region, so textures can be painted with
3D rules ("above the hairline", "near the lip landmarks") and stay put on every identity and expression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..face.geometry import UDIM_TILES, atlas_texcoords, skin_triangles, texcoords_to_texels, vertex_normals
from ..face.model import REGIONS, FaceModel

REGION_NAMES = tuple(REGIONS)


@dataclass(frozen=True)
class UVAtlas:
    """Per-texel geometry of the skin texture (H = size, W = 2 * size; row 0 is v = 1)."""

    size: int
    position: np.ndarray  # (H, W, 3) float32 mm on the mean neutral face; NaN where no triangle maps
    normal: np.ndarray  # (H, W, 3) float32 unit normals
    region: np.ndarray  # (H, W) int16 index into REGION_NAMES, -1 where empty
    covered: np.ndarray  # (H, W) bool texels inside some triangle (before padding)
    triangle: np.ndarray  # (H, W) int32 index into face_model.faces of the triangle each texel shows, -1 where empty

    def region_mask(self, *prefixes: str) -> np.ndarray:
        wanted = [k for k, name in enumerate(REGION_NAMES) if name.startswith(prefixes)]
        return np.isin(self.region, wanted)


def _vertex_regions(face_model: FaceModel) -> np.ndarray:
    regions = np.full(face_model.num_vertices, -1, dtype=np.int16)
    for k, (start, stop) in enumerate(REGIONS.values()):
        regions[start:stop] = k
    return regions


def _build(face_model: FaceModel, size: int) -> UVAtlas:
    height, width = size, size * UDIM_TILES
    triangles = skin_triangles(face_model)
    faces = face_model.faces[triangles]
    texel = texcoords_to_texels(atlas_texcoords(face_model.uv)[face_model.face_uv_index[triangles]], width, height)
    corners = face_model.neutral[faces]
    normals = vertex_normals(face_model.neutral, face_model.faces)[faces]
    region_of = _vertex_regions(face_model)[faces[:, 0]]

    position = np.full((height, width, 3), np.nan, dtype=np.float32)
    normal = np.zeros((height, width, 3), dtype=np.float32)
    region = np.full((height, width), -1, dtype=np.int16)
    triangle = np.full((height, width), -1, dtype=np.int32)
    # Splat a barycentric lattice fine enough to hit every texel of each triangle (dense where triangles are big).
    edge = np.linalg.norm(texel - np.roll(texel, 1, axis=1), axis=2).max(axis=1)
    steps = np.clip(np.ceil(edge * 1.5).astype(int), 1, 64)
    for n in np.unique(steps):
        chosen = np.nonzero(steps == n)[0]
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = i + j <= n
        bary = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], axis=1).astype(np.float32) / n  # (S, 3)
        points = np.einsum("sk,tkd->tsd", bary, texel[chosen])
        cols = np.clip(points[..., 0].astype(int), 0, width - 1).ravel()
        rows = np.clip(points[..., 1].astype(int), 0, height - 1).ravel()
        position[rows, cols] = np.einsum("sk,tkd->tsd", bary, corners[chosen]).reshape(-1, 3)
        normal[rows, cols] = np.einsum("sk,tkd->tsd", bary, normals[chosen]).reshape(-1, 3)
        region[rows, cols] = np.repeat(region_of[chosen], len(bary))
        triangle[rows, cols] = np.repeat(triangles[chosen], len(bary))
    covered = region >= 0
    # Pad a few texels past every island edge so bilinear filtering and mipmaps never pick up empty texels.
    _, (near_r, near_c) = ndimage.distance_transform_edt(~covered, return_indices=True)
    pad = ~covered & (ndimage.distance_transform_edt(~covered) <= 6)
    position[pad] = position[near_r[pad], near_c[pad]]
    normal[pad] = normal[near_r[pad], near_c[pad]]
    region[pad] = region[near_r[pad], near_c[pad]]
    triangle[pad] = triangle[near_r[pad], near_c[pad]]
    normal /= np.maximum(np.linalg.norm(normal, axis=2, keepdims=True), 1e-6)
    return UVAtlas(size=size, position=position, normal=normal, region=region, covered=covered, triangle=triangle)


def build_uv_atlas(face_model: FaceModel, size: int = 512) -> UVAtlas:
    """The atlas of `face_model` at `size` texels per tile side (cached per model and size)."""
    return face_model.derived(("uv_atlas", size), lambda: _build(face_model, size))
