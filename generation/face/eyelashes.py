"""Eyelashes as cards: ICT-FaceKit's eyelash strips drawn with an alpha-tested texture of lashes.

The model's lashes are strips meant for an alpha-masked hair texture. Each strip is a grid of 19 columns along the
lid by 6 rows from the root to the tip, rigged into the model's blink and squint shapes. `lash_cards` gives the
strips' quads with texture coordinates (u along the lid, v from root to tip); `lash_texture` paints one person's
lashes (RGBA: tapering clumps from a dense root line, the alpha is their coverage), and the renderer's alpha test
cuts out everything between them, so the skin shows between the lashes. Each upper lid has three strips: more of
them (each with its own phase along the texture) make a fuller fringe (mascara); each lower lid shows one strip, cut
short, because lower lashes are shorter and sparser.

The topology is computed from the mean face; the renderer draws the cards from the posed vertices of each frame, in
the shaded pass only (fine hairs: the mask and heatmap are the skin behind them).
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from .model import REGIONS, FaceModel

STRIP_COLUMNS, STRIP_ROWS = 19, 6
STRIPS_PER_LID = 3  # per eye: strips 0-2 on the upper lid, 3-5 on the lower lid
LOWER_TIP_ROW = 2  # the lower lashes end this many rows from their root
LASH_TEXTURE_SHAPE = (32, 128)  # texels from root to tip, and along one strip
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


@dataclass(frozen=True)
class LashCards:
    """The eyelash strips as cards: `vertices` (K,) model vertex indices, their texture coordinates `texcoords`
    (K, 2) (u along the lid, one texture width per strip, shifted per strip; v 0 at the root to 1 at the tip of an
    upper lash) and the quads' triangles `faces` (N, 3) indexing `vertices`."""

    vertices: np.ndarray
    texcoords: np.ndarray
    faces: np.ndarray


def lash_cards(face_model: FaceModel, upper_strips: int = STRIPS_PER_LID) -> LashCards:
    """The first `upper_strips` strips of each upper lid (1 to 3) and one strip of each lower lid, both eyes, cut
    to `LOWER_TIP_ROW` rows on the lower lid."""
    if not 1 <= upper_strips <= STRIPS_PER_LID:
        raise ValueError(f"upper_strips must be 1 to {STRIPS_PER_LID}, got {upper_strips}")
    vertices, texcoords, faces = [], [], []
    for number, (_, upper, grid) in enumerate(strip_grids(face_model)):
        if number % STRIPS_PER_LID >= (upper_strips if upper else 1):
            continue
        rows = STRIP_ROWS if upper else LOWER_TIP_ROW + 1
        first = sum(len(v) for v in vertices)
        vertices.append(grid[:rows].ravel())
        u = np.linspace(0.0, 1.0, STRIP_COLUMNS)[None, :] + 0.37 * number  # each strip its own lashes
        v = np.linspace(0.0, 1.0 if upper else 0.75, rows)[:, None]  # lower lashes: shorter
        texcoords.append(np.stack(np.broadcast_arrays(u, v), axis=-1).reshape(-1, 2))
        index = first + np.arange(rows * STRIP_COLUMNS).reshape(rows, STRIP_COLUMNS)
        a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
        faces.append(np.stack([np.stack([a, b, c], -1), np.stack([b, d, c], -1)], 0).reshape(-1, 3))
    return LashCards(np.concatenate(vertices), np.concatenate(texcoords).astype(np.float32),
                     np.concatenate(faces).astype(np.int32))


def lash_texture(count: int, root_width: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """One person's lashes (LASH_TEXTURE_SHAPE + (4,) uint8 RGBA, image order: the last row is the root, v = 0): about `count` lashes along
    a strip, each `root_width` texels wide at the root tapering to its tip, `length` (0-1 of the strip) long, leaning
    and curving a little, from a dense line at the root; RGB is white (the lashes' colour comes from the vertices),
    the alpha is their coverage."""
    rows, cols = LASH_TEXTURE_SHAPE
    v, u = np.mgrid[0:rows, 0:cols].astype(np.float64) + 0.5
    alpha = np.clip(1.6 - v, 0, 1)  # the lash line
    roots = (np.arange(count) + rng.uniform(-0.4, 0.4, count)) * cols / count
    for root, lean, reach, width in zip(roots, rng.normal(0, 0.12, count), length * rng.uniform(0.6, 1.0, count),
                                        root_width * rng.uniform(0.7, 1.3, count)):
        t = np.clip(v / (reach * rows), 0, 1)
        centre = root + lean * v * (1 + t)  # tips lean further: a slight curve
        across = np.abs((u - centre + cols / 2) % cols - cols / 2)  # the texture wraps along the lid
        half = 0.5 * width * (1 - t) ** 0.8 + 0.25
        alpha = np.maximum(alpha, np.clip(half - across + 0.5, 0, 1) * (v < reach * rows))
    rgba = np.full((rows, cols, 4), 255, np.uint8)
    rgba[..., 3] = np.round(255 * alpha).astype(np.uint8)
    return np.ascontiguousarray(rgba[::-1])  # image order: row 0 is v = 1, the tips (pyrender uploads it flipped)


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
