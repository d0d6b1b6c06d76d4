"""Eyelashes as geometry: fringes of thin spikes cut from ICT-FaceKit's eyelash strips.

The model's lashes are strips meant for an alpha-masked hair texture (drawn solid, they are black bands). Each strip is
a grid of 19 columns along the lid by 6 rows from the root to the tip. A lash here is one triangle from two
neighbouring roots to a tip, so a strip becomes a fringe of 18 spikes that moves with the lids (the model rigs the
strips into its blink and squint shapes). Each upper lid has three strips: their tips lean alternately, so more
strips make a fuller fringe (mascara thickens lashes; they thin with age). Each lower lid shows one strip, cut short,
because lower lashes are shorter and sparser.

Everything here is topology (vertex indices), computed from the mean face; the renderer draws the spikes from the
posed vertices of each frame, in the shaded pass only (fine hairs: the mask and heatmap are the skin behind them).
"""

from __future__ import annotations

import numpy as np

from .model import REGIONS, FaceModel

STRIP_COLUMNS, STRIP_ROWS = 19, 6
STRIPS_PER_LID = 3  # per eye: strips 0-2 on the upper lid, 3-5 on the lower lid
LOWER_TIP_ROW = 2  # the lower lashes end this many rows from their root
SIDES = {"left": slice(42, 48), "right": slice(36, 42)}  # the eye's Multi-PIE landmarks


def strip_grids(face_model: FaceModel) -> list[tuple[str, bool, np.ndarray]]:
    """(side, upper lid, grid) per eyelash strip; `grid` (STRIP_ROWS, STRIP_COLUMNS) holds vertex indices, the root
    row first, the columns in order along the lid. Rows and columns are read from the strips' texture coordinates
    (one u per column, one v per row)."""
    faces, uv_index = face_model.faces, face_model.face_uv_index
    landmarks = face_model.neutral[face_model.landmarks]
    out = []
    for side, eye_points in SIDES.items():
        first, last = REGIONS[f"eyelashes_{side}"]
        inside = np.all((faces >= first) & (faces < last), axis=1)
        uv = np.zeros((last - first, 2))
        uv[faces[inside].ravel() - first] = face_model.uv[uv_index[inside].ravel()]
        eye = landmarks[eye_points].mean(axis=0)
        per_strip = STRIP_ROWS * STRIP_COLUMNS
        if (last - first) != 2 * STRIPS_PER_LID * per_strip:
            raise ValueError(f"unexpected eyelash topology: {last - first} vertices on the {side} eye")
        for strip in range(2 * STRIPS_PER_LID):
            vertices = np.arange(first + strip * per_strip, first + (strip + 1) * per_strip)
            u, v = (np.round(uv[vertices - first, k], 3) for k in (0, 1))
            columns, rows = np.unique(u), np.unique(v)
            if len(columns) != STRIP_COLUMNS or len(rows) != STRIP_ROWS:
                raise ValueError(f"unexpected eyelash strip layout: {len(rows)} x {len(columns)} on the {side} eye")
            grid = np.zeros((STRIP_ROWS, STRIP_COLUMNS), np.int64)
            grid[np.searchsorted(rows, v), np.searchsorted(columns, u)] = vertices
            reach = np.linalg.norm(face_model.neutral[grid] - eye, axis=-1).mean(axis=1)
            if reach[0] > reach[-1]:  # the root row is the one nearest the eye
                grid = grid[::-1]
            out.append((side, strip < STRIPS_PER_LID, grid))
    return out


def lash_triangles(face_model: FaceModel, upper_strips: int = STRIPS_PER_LID) -> np.ndarray:
    """(N, 3) int32 triangles over the model's vertices: the spikes of the first `upper_strips` strips of each upper
    lid (1 to 3) and one strip of each lower lid, both eyes."""
    if not 1 <= upper_strips <= STRIPS_PER_LID:
        raise ValueError(f"upper_strips must be 1 to {STRIPS_PER_LID}, got {upper_strips}")
    triangles = []
    for number, (_, upper, grid) in enumerate(strip_grids(face_model)):
        if number % STRIPS_PER_LID >= (upper_strips if upper else 1):
            continue
        tip = STRIP_ROWS - 1 if upper else LOWER_TIP_ROW
        lean = number % 2  # alternate strips lean their tips one column along the lid
        for column in range(STRIP_COLUMNS - 1):
            triangles.append((grid[0, column], grid[0, column + 1], grid[tip, column + lean]))
    return np.asarray(triangles, np.int32)


def lash_anchors(face_model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """(lash vertices, face vertices): every eyelash vertex with the lid vertex its column's root sits on (the
    nearest vertex of the face on the mean face), so offsets made for the skin (ageing) can carry the lashes along."""
    face = np.arange(*REGIONS["face"])
    lashes, anchors = [], []
    for _, _, grid in strip_grids(face_model):
        roots = face_model.neutral[grid[0]]
        nearest = face[np.argmin(np.linalg.norm(face_model.neutral[face][None] - roots[:, None], axis=-1), axis=1)]
        lashes.append(grid.ravel())
        anchors.append(np.tile(nearest, STRIP_ROWS))
    return np.concatenate(lashes), np.concatenate(anchors)
