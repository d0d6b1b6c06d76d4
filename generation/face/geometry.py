"""Mesh and texture-space geometry shared by the renderer and the texture stage (numpy only, no rendering).

ICT-FaceKit lays its skin out in two UDIM tiles: the face (u in 0-1) and the back of the head (u in 1-2). The skin
atlas packs both side by side into one image (texture coordinate = (u / 2, v)).
"""

from __future__ import annotations

import numpy as np

from .model import FaceModel

SKIN_MATERIALS = ("M_Face", "M_BackHead")
UDIM_TILES = 2


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 at `edge0`, 1 at `edge1` (either order), a smooth cubic between: the soft edge of masks and offsets."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3)."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        normals[:, k] = sum(np.bincount(faces[:, c], face_normals[:, k], len(vertices)) for c in range(3))
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def barycentric_2d(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights (N, 3) of 2D points `p` (N, 2) in triangles `a`, `b`, `c` (N, 2 each), clipped to 0-1
    so points just outside (pixel or texel centres on an edge) snap onto their triangle. Not renormalised."""
    v0, v1, v2 = b - a, c - a, p - a
    denom = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    denom = np.where(np.abs(denom) < 1e-12, 1e-12, denom)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / denom
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / denom
    return np.clip(np.stack([1 - l1 - l2, l1, l2], axis=1), 0.0, 1.0)


def skin_triangles(face_model: FaceModel) -> np.ndarray:
    """Indices of the triangles textured by the skin atlas."""
    skin = [face_model.materials.index(name) for name in SKIN_MATERIALS]
    return np.nonzero(np.isin(face_model.face_material, skin))[0]


def atlas_texcoords(uv: np.ndarray) -> np.ndarray:
    """Model UVs (UDIM) -> atlas texture coordinates in 0-1."""
    return np.stack([uv[:, 0] / UDIM_TILES, uv[:, 1]], axis=1).astype(np.float32)


def texcoords_to_texels(texcoords: np.ndarray, width: int, height: int) -> np.ndarray:
    """Atlas texture coordinates (..., 2) -> continuous texel coordinates (x right, y down; row 0 is v = 1)."""
    return np.stack([texcoords[..., 0] * width, (1.0 - texcoords[..., 1]) * height], axis=-1)
