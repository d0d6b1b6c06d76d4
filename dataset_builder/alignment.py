"""Face alignment to the framing of 3DPain renders: a model pretrained on synthetic faces sees real ones the same way.

A similarity transform (rotation, uniform scale, shift; no shear) maps four anchors of a face, the two eye centres and
the two mouth corners, onto `TEMPLATE`: where those anchors sit, on average, in the generator's frontal neutral
renders (their `landmarks_2d`), as fractions of the image side. Any landmark markup whose first 60 points follow the
68-point Multi-PIE / iBUG order works:

- the 68 `landmarks_2d` of 3DPain renders and of dlib's `shape_predictor_68_face_landmarks`;
- the 66 AAM landmarks of UNBC-McMaster (the 68 without the inner-mouth corners 60 and 64, so points 0-59 agree).

`align_face(image, landmarks)` aligns a photo whose landmarks you have; `align_photo(image)` finds the face and its
landmarks first with dlib (the `[audit]` extra: `pip install dlib-bin face-recognition-models`). Both return the
aligned image, the landmarks in its pixels and the 2x3 matrix. Coordinates are pixels, x right, y down, pixel
centres at .5 (as `landmarks_2d` and PIL use). Only numpy and PIL here: no dataset or model imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image
from generation.errors import Pain3DError

# 0-based indices in the 68-point markup (and in UNBC's 66-point one: both agree on points 0-59).
RIGHT_EYE = tuple(range(36, 42))  # the subject's right eye, on the image's left
LEFT_EYE = tuple(range(42, 48))
MOUTH_CORNERS = (48, 54)
ANCHOR_NAMES = ("right_eye", "left_eye", "mouth_right", "mouth_left")

# Mean anchors of frontal neutral renders, as fractions of the image side (ViTPain's image processor holds the same
# values as ALIGNED_TEMPLATE for face_crop="aligned"; tests/test_evaluate_parity.py pins them equal): 60 identities of
# `pain3d generate --num-identities 60 --expressions-per-identity 1 --views frontal` (256 px); re-derive with
# `template_from_landmarks`. Identities spread around these by about 0.8% of the image side (eyes; mouth height 2%).
TEMPLATE = np.array(
    [
        [0.3758, 0.4445],  # right eye centre
        [0.6235, 0.4435],  # left eye centre
        [0.4045, 0.7130],  # right mouth corner (48)
        [0.5980, 0.7124],  # left mouth corner (54)
    ],
    dtype=np.float64,
)
DEFAULT_SIZE = 256  # the generator's default image size
FILL = (128, 128, 128)  # outside the photo: the renders' mid-grey default background


class FaceNotFoundError(Pain3DError, ValueError):
    """No face (or no usable landmarks) in a photo."""


@dataclass
class AlignedFace:
    """An aligned face: `image` (size x size RGB), `landmarks` mapped into it, `matrix` (2x3, photo -> aligned
    pixels)."""

    image: Image.Image
    landmarks: np.ndarray
    matrix: np.ndarray


def anchor_points(landmarks) -> np.ndarray:
    """(4, 2) anchors (right eye centre, left eye centre, right and left mouth corners) of 68 or 66 landmarks."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (66, 68):
        raise ValueError(
            f"landmarks must be (68, 2) (Multi-PIE/iBUG, as landmarks_2d and dlib give) or (66, 2) (UNBC AAM), "
            f"got shape {points.shape}"
        )
    if not np.isfinite(points[:60]).all():
        raise ValueError("landmarks hold NaN or infinite values; the eye and mouth points are needed to align")
    return np.stack(
        [points[list(RIGHT_EYE)].mean(0), points[list(LEFT_EYE)].mean(0), points[MOUTH_CORNERS[0]],
         points[MOUTH_CORNERS[1]]]
    )


def template_from_landmarks(landmarks: Sequence, image_size: int) -> np.ndarray:
    """The template that a set of renders defines: mean anchors of their landmarks (N, 68, 2), divided by the side."""
    anchors = np.stack([anchor_points(points) for points in landmarks])
    return anchors.mean(axis=0) / float(image_size)


def similarity_matrix(source, target) -> np.ndarray:
    """The 2x3 similarity transform (no reflection) that maps the points `source` (N, 2) onto `target` (N, 2)
    in the least-squares sense (Umeyama's closed form)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    variance = (s**2).sum() / len(s)
    if variance <= 0:
        raise ValueError("the anchor points coincide: cannot estimate a scale from them")
    u, singular, vt = np.linalg.svd(t.T @ s / len(s))
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ flip @ vt
    scale = (singular * np.diag(flip)).sum() / variance
    linear = scale * rotation
    return np.c_[linear, mean_t - linear @ mean_s]


def transform_points(points, matrix) -> np.ndarray:
    """Apply a 2x3 affine `matrix` to points (N, 2)."""
    points = np.asarray(points, np.float64)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def alignment_matrix(landmarks, size: int = DEFAULT_SIZE, template: np.ndarray = TEMPLATE) -> np.ndarray:
    """2x3 matrix from photo pixels to a size x size aligned image (anchors onto `template` * size)."""
    return similarity_matrix(anchor_points(landmarks), np.asarray(template) * size)


def warp(image: Image.Image, matrix, size: int | tuple[int, int], fill=FILL) -> Image.Image:
    """`image` resampled through a 2x3 photo -> output `matrix` into an RGB image of `size` (a side, or (width,
    height)), bilinear; `fill` outside the photo."""
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(v) for v in size)
    forward = np.vstack([np.asarray(matrix, np.float64), [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(forward)[:2].ravel()  # PIL asks, for each output pixel, where to read the input
    return image.convert("RGB").transform(
        size, Image.Transform.AFFINE, data=tuple(inverse), resample=Image.Resampling.BILINEAR, fillcolor=fill
    )


def align_face(image: Image.Image, landmarks, size: int = DEFAULT_SIZE, template: np.ndarray = TEMPLATE) -> AlignedFace:
    """Crop and align `image` to the 3DPain framing from its 68 or 66 landmarks (pixels of `image`)."""
    if int(size) < 8:
        raise ValueError(f"the aligned image size must be at least 8 pixels, got {size}")
    matrix = alignment_matrix(landmarks, int(size), template)
    points = transform_points(np.asarray(landmarks, np.float64), matrix)
    return AlignedFace(warp(image, matrix, int(size)), points.astype(np.float32), matrix)


# ---- photos without landmarks: dlib (the [audit] extra) -------------------------------------------------------------

_DLIB: dict = {}


def _dlib_models():
    if not _DLIB:
        import importlib.util
        from pathlib import Path

        # The model file is found without importing face_recognition_models: its __init__ needs pkg_resources,
        # which setuptools 81+ no longer ships.
        spec = importlib.util.find_spec("face_recognition_models")
        model = spec and Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
        try:
            import dlib
        except ImportError:
            dlib = None
        if dlib is None or model is None or not model.is_file():
            raise ImportError(
                "Finding a face and its landmarks needs dlib and its 68-point model: "
                "`pip install dlib-bin face-recognition-models` (the `[audit]` extra), or pass landmarks to "
                "align_face yourself."
            )
        _DLIB["detector"] = dlib.get_frontal_face_detector()
        _DLIB["predictor"] = dlib.shape_predictor(str(model))
    return _DLIB


def detect_landmarks(image: Image.Image, upsample: int = 1) -> np.ndarray:
    """68 landmarks (pixels) of the largest face dlib's HOG detector finds in `image`; `FaceNotFoundError` if none.
    `upsample` lets the detector find small faces (0 is faster for faces that fill the photo)."""
    models = _dlib_models()
    array = np.asarray(image.convert("RGB"))
    faces = list(models["detector"](array, int(upsample)))
    if not faces:
        raise FaceNotFoundError(
            f"no face found in the {image.width}x{image.height} photo (dlib HOG detector, upsample={upsample}); "
            "use a frontal, well-lit photo, a larger upsample, or pass landmarks to align_face"
        )
    face = max(faces, key=lambda rect: rect.width() * rect.height())
    shape = models["predictor"](array, face)
    # dlib's integer pixel indices are pixel centres: +0.5 gives the continuous coordinates used here.
    return np.array([[shape.part(i).x + 0.5, shape.part(i).y + 0.5] for i in range(shape.num_parts)], np.float64)


def align_photo(image: Image.Image, size: int = DEFAULT_SIZE, upsample: int = 1) -> AlignedFace:
    """Find the face in any photo (dlib) and align it to the 3DPain framing: what to call before the
    `pain-estimation` pipeline on a photo that is not already a face crop."""
    return align_face(image, detect_landmarks(image, upsample), size)
