"""Baking camera images into the skin UV atlas, and filling what no camera saw.

For every atlas texel we know the triangle it shows and its barycentric position in it (`texel_surface`), so on
any identity's mesh each texel is a 3D point with a normal. Baking an image taken by a `View`:

1. project the texel's point into the camera (the same camera `FaceRenderer` uses);
2. keep it if the id pass sees that surface there (depth test against the rendered depth, with a tolerance that
   grows on slanted surfaces) and it faces the camera;
3. sample the image there (bilinear) with weight cos(angle between normal and view direction) squared.

Several views are averaged with their weights. Texels no view saw take the colour of their mirror texel (the
nearest texel to the point mirrored about the face's x = 0 plane) where that one was seen, else the identity's
procedural texture shifted to the mean colour of the baked skin. A confidence ramp blends the three, so there
are no hard seams. Everything is vectorised numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..face.geometry import atlas_texcoords, barycentric_2d, texcoords_to_texels, vertex_normals
from ..face.model import FaceModel
from ..render import FaceRenderer
from ..views import View
from .uv_atlas import UVAtlas, build_uv_atlas

PAINTED_REGIONS = ("face", "head_and_neck")  # sockets of the mouth and eyes keep the procedural colours
MIN_COS = 0.1  # surfaces seen more edge-on than about 84 degrees are not baked
FULL_WEIGHT = 0.1  # a texel seen at cos >= 0.32 (72 degrees) by one view is trusted fully; more edge-on ramps down
MIRROR_TOLERANCE_MM = 3.0
DEPTH_TOLERANCE_MM = 1.0


@dataclass(frozen=True)
class TexelSurface:
    """The surface point behind every atlas texel that some triangle maps to (including the padding ring)."""

    rows: np.ndarray  # (N,) texel row
    cols: np.ndarray  # (N,) texel column
    corners: np.ndarray  # (N, 3) int32 vertex indices of the texel's triangle
    barycentric: np.ndarray  # (N, 3) float32 weights of the corners (sum 1)
    painted: np.ndarray  # (N,) bool texel of the skin proper (face, head and neck), not of a socket
    covered: np.ndarray  # (N,) bool inside its triangle (not padding)

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) positions of the texels on a mesh with these vertices (mm)."""
        return np.einsum("nk,nkd->nd", self.barycentric, vertices[self.corners])


def texel_surface(face_model: FaceModel, atlas_size: int) -> TexelSurface:
    """The texels of the skin atlas as points on the mesh (computed once per face model and size)."""
    return face_model.derived(("texel_surface", atlas_size), lambda: _texel_surface(face_model, atlas_size))


def _texel_surface(face_model: FaceModel, atlas_size: int) -> TexelSurface:
    atlas = build_uv_atlas(face_model, atlas_size)
    rows, cols = np.nonzero(atlas.triangle >= 0)
    triangles = atlas.triangle[rows, cols]
    height, width = atlas.region.shape
    texel = texcoords_to_texels(atlas_texcoords(face_model.uv)[face_model.face_uv_index[triangles]], width, height)
    p = np.stack([cols + 0.5, rows + 0.5], axis=1)  # texel centres, as uv_atlas and the renderer sample them
    bary = barycentric_2d(p, texel[:, 0], texel[:, 1], texel[:, 2])  # padding texels snap onto their triangle
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    painted = atlas.region_mask(*PAINTED_REGIONS)[rows, cols]
    return TexelSurface(
        rows=rows, cols=cols, corners=face_model.faces[triangles].astype(np.int32),
        barycentric=bary.astype(np.float32), painted=painted, covered=atlas.covered[rows, cols],
    )


def mirror_texels(atlas: UVAtlas, surface: TexelSurface) -> np.ndarray:
    """For every surface texel, the index of the painted texel nearest to its point mirrored about x = 0 on the mean
    face (facing the mirrored way), or -1 when none lies within MIRROR_TOLERANCE_MM."""
    from scipy.spatial import cKDTree

    position = atlas.position[surface.rows, surface.cols].astype(np.float64)
    normal = atlas.normal[surface.rows, surface.cols]
    targets = np.nonzero(surface.painted & surface.covered & np.isfinite(position).all(axis=1))[0]
    mirrored = position * np.array([-1.0, 1.0, 1.0])
    valid = np.isfinite(mirrored).all(axis=1)
    distance, nearest = cKDTree(position[targets]).query(np.where(valid[:, None], mirrored, 0.0))
    found = targets[np.minimum(nearest, len(targets) - 1)]
    agree = np.einsum("nd,nd->n", normal * np.array([-1.0, 1.0, 1.0], np.float32), normal[found]) > 0.5
    return np.where(valid & (distance < MIRROR_TOLERANCE_MM) & agree, found, -1)


@dataclass(frozen=True)
class ViewGeometry:
    """What the id pass of one view tells: per-pixel camera depth (mm along the viewing axis, 0 = background),
    camera-space normals (x right, y up, z toward the camera) and the foreground mask."""

    view: View
    depth: np.ndarray  # (R, R) float32
    normal: np.ndarray  # (R, R, 3) float32
    mask: np.ndarray  # (R, R) bool

    def depth_image(self) -> np.ndarray:
        """ControlNet depth condition: normalised inverse depth, near = white, background black, uint8 (R, R, 3).
        The face spans 0.25-1 so its silhouette stays visible, as in depth maps estimated from photos."""
        image = np.zeros(self.depth.shape, np.float32)
        if self.mask.any():
            inverse = 1.0 / self.depth[self.mask]
            span = max(float(inverse.max() - inverse.min()), 1e-12)
            image[self.mask] = 0.25 + 0.75 * (inverse - inverse.min()) / span
        return np.repeat((image * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)

    def normal_image(self) -> np.ndarray:
        """ControlNet normal condition: camera-space normals as RGB = (n + 1) / 2 (red right, green up, blue toward
        the camera), background (0.5, 0.5, 1) like a wall facing the camera; uint8 (R, R, 3)."""
        normal = np.where(self.mask[..., None], self.normal, np.array([0.0, 0.0, 1.0], np.float32))
        return ((normal + 1.0) / 2.0 * 255 + 0.5).clip(0, 255).astype(np.uint8)


class TextureBaker:
    """Bakes images of one face model's meshes, taken with `renderer`'s cameras, into its UV atlas."""

    def __init__(self, face_model: FaceModel, atlas_size: int, renderer: FaceRenderer):
        self.face_model = face_model
        self.atlas = build_uv_atlas(face_model, atlas_size)
        self.surface = texel_surface(face_model, atlas_size)
        self.mirror = mirror_texels(self.atlas, self.surface)
        self.renderer = renderer

    def view_geometry(self, vertices: np.ndarray, view: View) -> ViewGeometry:
        renderer = self.renderer
        vertices = np.asarray(vertices, np.float32)
        ids = renderer.render_ids(vertices, view)
        rows, cols, triangles, bary = renderer.barycentrics(ids, vertices, view)
        corners = renderer.faces[triangles]
        _, w = renderer.project(vertices, view)  # clip w = depth along the viewing axis
        depth = np.zeros(ids.shape, np.float32)
        depth[rows, cols] = (bary * w[corners]).sum(axis=1)
        world = (bary[..., None] * vertex_normals(vertices, renderer.faces)[corners]).sum(axis=1)
        camera = world @ renderer.camera_pose(view)[:3, :3]  # world -> camera axes (the pose's columns)
        normal = np.zeros(ids.shape + (3,), np.float32)
        normal[rows, cols] = camera / np.maximum(np.linalg.norm(camera, axis=1, keepdims=True), 1e-12)
        mask = np.zeros(ids.shape, bool)
        mask[rows, cols] = True  # the face's own surface (no lashes or hair)
        return ViewGeometry(view=view, depth=depth, normal=normal, mask=mask)

    def project(self, vertices: np.ndarray, views: list[tuple[ViewGeometry, np.ndarray]]):
        """Weighted mean colour (N, 3) of every surface texel over the views (image float 0-1 (R, R, 3) each) and
        its total weight (N,) (0 = seen by none)."""
        renderer, surface = self.renderer, self.surface
        vertices = np.asarray(vertices, np.float32)
        points = surface.points(vertices).astype(np.float64)
        normals = np.einsum("nk,nkd->nd", surface.barycentric, vertex_normals(vertices, renderer.faces)[surface.corners])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        color = np.zeros((len(points), 3), np.float64)
        weight = np.zeros(len(points), np.float64)
        for geometry, image in views:
            size = geometry.depth.shape[0]
            eye = renderer.camera_pose(geometry.view)[:3, 3]
            to_eye = eye - points
            cos = np.einsum("nd,nd->n", normals, to_eye) / np.linalg.norm(to_eye, axis=1)
            pixels, w = renderer.project(points, geometry.view)
            x, y = pixels[:, 0], pixels[:, 1]
            col, row = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
            inside = (cos > MIN_COS) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
            col, row = np.clip(col, 0, size - 1), np.clip(row, 0, size - 1)
            # depth test: a pixel spans pixel_mm, over which a surface at angle theta recedes by pixel_mm * tan(theta)
            pixel_mm = w * 2.0 * np.tan(renderer.yfov / 2.0) / size
            slope = np.sqrt(np.clip(1.0 - cos**2, 0.0, 1.0)) / np.maximum(cos, MIN_COS)
            seen = inside & geometry.mask[row, col]
            seen &= w <= geometry.depth[row, col] + DEPTH_TOLERANCE_MM + pixel_mm * (1.0 + slope)
            k = np.nonzero(seen)[0]
            weight_k = cos[k] ** 2
            color[k] += weight_k[:, None] * bilinear(image, x[k] - 0.5, y[k] - 0.5)
            weight[k] += weight_k
        color /= np.maximum(weight, 1e-12)[:, None]
        return color.astype(np.float32), weight.astype(np.float32)

    def compose(self, color: np.ndarray, weight: np.ndarray, base_albedo: np.ndarray) -> tuple[np.ndarray, dict]:
        """The finished albedo (uint8 sRGB, the atlas's shape) from baked colours and the identity's procedural
        texture, and coverage figures (fractions of the painted texels inside triangles)."""
        surface = self.surface
        painted = surface.painted
        confidence = np.where(painted, np.clip(weight / FULL_WEIGHT, 0.0, 1.0), 0.0).astype(np.float32)
        base = base_albedo[surface.rows, surface.cols].astype(np.float32) / 255.0
        trusted = confidence >= 0.5
        shift = (color[trusted] - base[trusted]).mean(axis=0) if trusted.any() else np.zeros(3, np.float32)
        mirror_ok = self.mirror >= 0
        mirror_index = np.where(mirror_ok, self.mirror, 0)
        mirror_confidence = np.where(mirror_ok, confidence[mirror_index], 0.0)[:, None]
        fill = mirror_confidence * color[mirror_index] + (1 - mirror_confidence) * np.clip(base + shift, 0.0, 1.0)
        final = confidence[:, None] * color + (1 - confidence[:, None]) * fill
        albedo = base_albedo.copy()
        albedo[surface.rows[painted], surface.cols[painted]] = (np.clip(final[painted], 0, 1) * 255 + 0.5).astype(np.uint8)
        inside = painted & surface.covered
        report = {
            "coverage": float((weight[inside] > 0).mean()),
            "mirrored": float(((weight[inside] == 0) & (mirror_confidence[inside, 0] > 0)).mean()),
            "procedural": float(((weight[inside] == 0) & (mirror_confidence[inside, 0] == 0)).mean()),
        }
        return albedo, report

    def coverage_map(self, weight: np.ndarray) -> np.ndarray:
        """uint8 (H, W) image of the atlas: 255 where baked, 96 where painted but unseen, 0 elsewhere (for viewing)."""
        out = np.zeros(self.atlas.region.shape, np.uint8)
        painted = self.surface.painted
        out[self.surface.rows[painted], self.surface.cols[painted]] = np.where(weight[painted] > 0, 255, 96)
        return out


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of image (H, W, C) at continuous pixel coordinates (0 = centre of the first pixel)."""
    height, width = image.shape[:2]
    x = np.clip(x, 0, width - 1)
    y = np.clip(y, 0, height - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


__all__ = ["TextureBaker", "TexelSurface", "ViewGeometry", "bilinear", "mirror_texels", "texel_surface"]
