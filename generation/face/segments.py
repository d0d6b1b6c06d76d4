"""Segmentation classes of the face model's own vertices and triangles (ids of `columns.SEGMENTATION_CLASSES`).

Found once on the mean face, so a class moves with its vertices under every identity and expression: the model's
regions (eyes, mouth interior), the ears (`hair.ear_vertices`) and, on the face surface, the nose, brows and lips as
the areas the Multi-PIE landmarks outline, and the neck below the jaw. Right and left are the person's own (the
person's right is at -x).
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path

from ..columns import SEGMENTATION_CLASSES
from .hair import ear_vertices
from .model import FaceModel

CLASS_ID = {name: index for index, name in enumerate(SEGMENTATION_CLASSES)}
BROW_HALF_WIDTH_MM = 5.0  # the brow band around the brow landmarks' line
NOSE_WING_MM = 4.0  # the nose wings stand out beyond the nostril landmarks by about this much


def _inside(points: np.ndarray, outline: np.ndarray) -> np.ndarray:
    return Path(outline[:, :2]).contains_points(points[:, :2])


def _near_polyline(points: np.ndarray, line: np.ndarray, radius: float) -> np.ndarray:
    """Points (xy) within `radius` mm of the polyline `line` (xy)."""
    near = np.zeros(len(points), bool)
    for a, b in zip(line[:-1, :2], line[1:, :2]):
        ab = b - a
        t = np.clip(((points[:, :2] - a) @ ab) / (ab @ ab), 0, 1)
        near |= np.linalg.norm(points[:, :2] - (a + t[:, None] * ab), axis=1) < radius
    return near


def vertex_classes(face_model: FaceModel) -> np.ndarray:
    """Class id (uint8, V) of every face-model vertex."""
    return face_model.derived(("segment_vertex_classes",), lambda: _vertex_classes(face_model))


def _vertex_classes(face_model: FaceModel) -> np.ndarray:
    p = face_model.neutral
    lm = p[face_model.landmarks]
    classes = np.full(face_model.num_vertices, CLASS_ID["skin"], np.uint8)
    side = np.where(p[:, 0] < 0, "right", "left")
    surface = face_model.region("face", "head_and_neck")
    s = p[surface]
    # the neck: below a line from just under the chin back and up toward the ear lobes
    chin = lm[8]
    neck = s[:, 1] < chin[1] - 4.0 + 0.35 * (chin[2] - s[:, 2])
    classes[surface[neck]] = CLASS_ID["neck"]
    front = s[:, 2] > lm[0, 2]  # the face surface in front of the ears
    nose_outline = np.array([lm[27], lm[35] + (NOSE_WING_MM, 0, 0), lm[35] + (NOSE_WING_MM, -3, 0), lm[33] - (0, 3, 0),
                             lm[31] - (NOSE_WING_MM, 3, 0), lm[31] - (NOSE_WING_MM, 0, 0)])
    nose = front & _inside(s, nose_outline) & (s[:, 2] > lm[31, 2] - 6.0)
    classes[surface[nose]] = CLASS_ID["nose"]
    upper_lip = lm[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]]
    lower_lip = lm[[54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64]]
    lips_front = front & (s[:, 2] > lm[48, 2] - 8.0)
    classes[surface[lips_front & _inside(s, upper_lip)]] = CLASS_ID["upper_lip"]
    classes[surface[lips_front & _inside(s, lower_lip)]] = CLASS_ID["lower_lip"]
    for name, brow in (("right", lm[17:22]), ("left", lm[22:27])):
        band = front & _near_polyline(s, brow, BROW_HALF_WIDTH_MM) & (s[:, 2] > brow[:, 2].min() - 10.0)
        classes[surface[band]] = CLASS_ID[f"{name}_brow"]
    ears = ear_vertices(face_model)
    for name in ("right", "left"):
        classes[ears[side[ears] == name]] = CLASS_ID[f"{name}_ear"]
    classes[face_model.region("mouth_socket", "gums_and_tongue", "teeth")] = CLASS_ID["mouth_interior"]
    for name in ("right", "left"):
        classes[face_model.region(f"iris_{name}", f"sclera_{name}", f"eye_socket_{name}")] = CLASS_ID[f"{name}_eye"]
    return classes


def triangle_classes(face_model: FaceModel, faces: np.ndarray) -> np.ndarray:
    """Class id (uint8, F) of triangles `faces` (F, 3): the class most of its corners have (the first corner's on a
    three-way tie)."""
    corners = vertex_classes(face_model)[faces]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    return np.where((b == c) & (a != b), b, a)
