"""The ground-truth columns of a generated row (docs/ground_truth.md): the always-on camera, head pose, 3D landmarks
with visibility and blendshape weights, and the opt-in passes as images (`pass_images`) with their decoders.

Everything comes from one render (`FaceRenderer.render(ground_truth=True)`), in OpenCV's camera frame: x right,
y down, z forward, millimetres; intrinsics in pixels with pixel centres at .5, as `landmarks_2d`.
"""

from __future__ import annotations

import numpy as np

from .columns import BLENDSHAPE_NAMES, DEPTH_UNITS_PER_MM, PASSES, SEGMENTATION_CLASSES
from .face.accessories import build_earrings
from .face.hair_styles import hair_style
from .face.segments import CLASS_ID
from .facs import blendshape_weights
from .views import View

__all__ = ["PASSES", "SEGMENTATION_CLASSES", "decode_depth", "decode_normals", "geometry_columns", "hair_classes",
           "pass_images"]


def geometry_columns(render, view: View, distance_mm: float, action_units: dict) -> dict:
    """The always-on columns of one image: its `render` (with ground truth) in `view` (the identity's, jittered),
    the camera `distance_mm` from the point it orbits, and the `action_units` that posed the face."""
    weights = blendshape_weights(action_units)
    return {
        "camera_intrinsics": np.asarray(render.intrinsics, np.float32).tolist(),
        "camera_extrinsics": np.asarray(render.extrinsics, np.float32).tolist(),
        "head_pose": {"yaw": view.yaw, "pitch": view.pitch, "roll": view.roll, "distance_mm": float(distance_mm),
                      "rotation": np.asarray(render.extrinsics[:3, :3], np.float32).tolist()},
        "landmarks_3d": render.landmarks_3d.tolist(),
        "landmarks_visible": render.landmarks_visible.tolist(),
        "blendshape_weights": {name: float(weights.get(name, 0.0)) for name in BLENDSHAPE_NAMES},
    }


def pass_images(render, passes) -> dict[str, np.ndarray]:
    """The asked `passes` of a `render` as PNG-ready arrays: depth uint16 (H, W) in 1/DEPTH_UNITS_PER_MM mm, normals
    uint8 (H, W, 3) as (n + 1) / 2, segmentation uint8 (H, W) class ids; 0 (black) on the background."""
    out = {}
    foreground = render.depth > 0
    if "depth" in passes:
        out["depth"] = np.clip(np.rint(render.depth * DEPTH_UNITS_PER_MM), 0, 65535).astype(np.uint16)
    if "normals" in passes:
        encoded = np.clip(np.rint((render.normals + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)
        out["normals"] = np.where(foreground[..., None], encoded, 0).astype(np.uint8)
    if "segmentation" in passes:
        out["segmentation"] = render.segmentation.astype(np.uint8)
    return out


def decode_depth(image) -> np.ndarray:
    """Camera z in mm (float32 (H, W), 0 on the background) from a `depth` column's image."""
    return np.asarray(image, np.float32) / DEPTH_UNITS_PER_MM


def decode_normals(image) -> np.ndarray:
    """Camera-space unit normals (float32 (H, W, 3), zero on the background) from a `normals` column's image."""
    pixels = np.asarray(image)
    normals = pixels.astype(np.float32) / 255.0 * 2.0 - 1.0
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    return np.where(pixels.any(axis=-1, keepdims=True), normals, 0.0).astype(np.float32)


def hair_classes(face_model, identity) -> np.ndarray | None:
    """Segmentation class of each triangle of `identity.hair` (hair or headwear, then the earrings it ends with), or
    None without hair."""
    hair = identity.hair
    if hair is None:
        return None
    a = identity.spec.appearance
    earrings = 0
    if a.earrings:  # `identity_hair` puts the earrings last; built again only to count their triangles
        earrings = len(build_earrings(face_model, identity.neutral, a.earrings, a.earring_rgb).faces)
    covering = a.hair_style and hair_style(a.hair_style).covering_front_mm is not None
    classes = np.full(len(hair.faces), CLASS_ID["headwear" if covering else "hair"], np.uint8)
    classes[len(hair.faces) - earrings:] = CLASS_ID["earrings"]
    return classes
