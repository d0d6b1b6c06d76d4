"""Accessories worn on the head: earrings (studs or hoops) at each ear lobe; and `identity_hair`, everything an
identity wears over its head (hair or covering, earrings) as one mesh.

They are geometry drawn with the hair (`HairMesh`), so they occlude the skin in the image, the mask and the heatmap
in the same way. The lobe is found once on the model's mean face and followed on every identity through the shared
mesh topology, so earrings sit on each person's own ears.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .hair import SOLID_TEXCOORD, HairMesh, HairSpec, _grid_mesh, build_hair
from .model import FaceModel

if TYPE_CHECKING:  # the sampling side imports this package; only the annotation needs it
    from ..sampling.appearance import Appearance

EARRINGS = ("stud", "hoop")
# Where the bottom of the ear lobe is on the ICT mean face (mm, right ear; the left mirrors x).
_MEAN_LOBE = np.array([84.0, -11.0, -6.0])


def lobe_vertices(face_model: FaceModel) -> tuple[int, int]:
    """Indices of the two ear-lobe vertices (right, left), the head vertices nearest the mean face's lobes."""
    head = face_model.region("face", "head_and_neck")
    points = face_model.neutral[head]
    return tuple(int(head[np.argmin(np.linalg.norm(points - _MEAN_LOBE * (sign, 1, 1), axis=1))]) for sign in (1, -1))


def _wrapped_grid(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and outward-wound triangles of a (rows, columns) grid of points wrapping around its columns, as the
    hair is triangulated (its last row never rises above its first, so no crown is closed)."""
    return _grid_mesh(points, np.ones(points.shape[:2], bool))


def _sphere(centre: np.ndarray, radius: float, rows: int = 8, cols: int = 12) -> tuple[np.ndarray, np.ndarray]:
    u = np.linspace(0, np.pi, rows)[:, None]
    v = np.linspace(0, 2 * np.pi, cols, endpoint=False)[None, :]
    points = np.stack(np.broadcast_arrays(np.sin(u) * np.cos(v), np.cos(u), np.sin(u) * np.sin(v)), -1)
    return _wrapped_grid(points * radius + centre)


def _torus(centre: np.ndarray, ring: float, tube: float, rows: int = 24, cols: int = 8):
    """A hoop hanging from `centre` (its top), in the plane facing sideways (y-z)."""
    u = np.linspace(0, 2 * np.pi, rows)[:, None]
    v = np.linspace(0, 2 * np.pi, cols, endpoint=False)[None, :]
    r = ring + tube * np.cos(v)
    points = np.stack(np.broadcast_arrays(tube * np.sin(v), r * np.cos(u) - ring, r * np.sin(u)), -1)
    return _wrapped_grid(points[:, ::-1] + centre)  # (u, v) turn the other way round than on the sphere


def build_earrings(face_model: FaceModel, neutral_vertices: np.ndarray, kind: str, color) -> HairMesh:
    """A pair of earrings of `kind` ("stud" or "hoop") and sRGB `color` at the identity's ear lobes."""
    if kind not in EARRINGS:
        raise ValueError(f"unknown earring {kind!r}; choose one of {', '.join(EARRINGS)}")
    vertices, faces = [], []
    for index in lobe_vertices(face_model):
        lobe = np.asarray(neutral_vertices[index], np.float64)
        outward = np.array([np.sign(lobe[0]) * 1.5, 0.0, 0.0])
        if kind == "stud":
            v, f = _sphere(lobe + outward + (0.0, 2.0, 1.0), 3.0)
        else:
            v, f = _torus(lobe + outward + (0.0, 2.0, 0.0), 7.0, 0.9)
        faces.append(f + sum(len(x) for x in vertices))
        vertices.append(v)
    vertices = np.concatenate(vertices).astype(np.float32)
    return HairMesh(vertices, np.concatenate(faces).astype(np.int32),
                    np.tile(np.asarray(color, np.float32), (len(vertices), 1)), roughness=0.3)


def combine(*meshes: HairMesh | None) -> HairMesh | None:
    """One mesh of everything drawn over the head (None when there is nothing); the first mesh's roughness."""
    meshes = [m for m in meshes if m is not None]
    if not meshes:
        return None
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    strands = meshes[0].strands  # the others sit where the first's strand texture is opaque (`hair.SOLID_TEXCOORD`)
    texcoords = None if strands is None else np.concatenate(
        [m.texcoords if m.texcoords is not None else np.tile(SOLID_TEXCOORD, (len(m.vertices), 1)) for m in meshes])
    return HairMesh(np.concatenate([m.vertices for m in meshes]),
                    np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]).astype(np.int32),
                    np.concatenate([m.colors for m in meshes]), meshes[0].roughness, texcoords, strands)


def identity_hair(face_model: FaceModel, neutral: np.ndarray, appearance: Appearance,
                  rng: np.random.Generator) -> HairMesh | None:
    """The hair or head covering and the earrings an `appearance` asks for, as one `HairMesh` (None for a bald head
    without earrings), fitted to the identity's neutral head (mm); hair greyed by age (strand by strand), coverings
    fabric-coloured (`HairSpec.of`). The hair's randomness comes from `rng`."""
    hair = build_hair(face_model, neutral, HairSpec.of(appearance), rng)
    if not appearance.earrings:
        return combine(hair)
    return combine(hair, build_earrings(face_model, neutral, appearance.earrings, appearance.earring_rgb))
