"""The ICT-FaceKit Light face model as compact numpy arrays.

ICT-FaceKit Light: MIT License, Copyright (c) 2020 USC Institute for Creative Technologies
(github.com/ICT-VGL/ICT-FaceKit). The raw model is a folder of OBJ files (`FaceXModel/`) that all share one vertex
order; `convert_face_model` turns it once into a compressed `.npz` cache that `FaceModel.load` reads in a fraction of
a second. All geometry here is in millimetres (the OBJ files are in centimetres).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..manifest import replacing
from ..errors import Pain3DError

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
CM_TO_MM = 10.0

# Vertex ranges of the model's geometries (inclusive start, exclusive end), from the ICT-FaceKit README.
REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_and_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_and_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "sclera_left": (21451, 22221),
    "iris_left": (22221, 23021),
    "sclera_right": (23021, 23791),
    "iris_right": (23791, 24591),
    "lacrimal_fluid_left": (24591, 24795),
    "lacrimal_fluid_right": (24795, 24999),
    "eye_blend_left": (24999, 25023),
    "eye_blend_right": (25023, 25047),
    "eye_occlusion_left": (25047, 25199),
    "eye_occlusion_right": (25199, 25351),
    "eyelashes_left": (25351, 26035),
    "eyelashes_right": (26035, 26719),
}
NUM_VERTICES = 26719
NUM_IDENTITY_SHAPES = 100
NEUTRAL_OBJ = "generic_neutral_mesh.obj"


class FaceModelError(Pain3DError, RuntimeError):
    """The face model is missing, incomplete or corrupt."""


def _obj_lines(path: Path, prefix: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line for line in handle if line.startswith(prefix)]


def read_obj_vertices(path: Path) -> np.ndarray:
    """The raw `v` lines of an OBJ file as a (V, 3) float64 array, in file order (no seam splitting)."""
    lines = _obj_lines(path, "v ")
    try:
        values = np.array(" ".join(line[2:] for line in lines).split(), dtype=np.float64)
        return values.reshape(-1, 3)
    except ValueError as error:
        raise FaceModelError(f"{path.name}: cannot parse its vertex lines ({error}); the file is corrupt") from None


def read_obj_topology(path: Path) -> dict[str, np.ndarray]:
    """Triangulated faces, UVs and per-face material of an OBJ (quads split along their 0-2 diagonal)."""
    uv, tri_v, tri_t, tri_material, materials = [], [], [], [], []
    current = -1
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("vt "):
                uv.append(line.split()[1:3])
            elif line.startswith("usemtl "):
                materials.append(line.split()[1])
                current = len(materials) - 1
            elif line.startswith("f "):
                corners = [corner.split("/") for corner in line.split()[1:]]
                for k in range(1, len(corners) - 1):  # fan triangulation: (0,1,2), (0,2,3)
                    tri = (corners[0], corners[k], corners[k + 1])
                    tri_v.append([int(c[0]) - 1 for c in tri])
                    tri_t.append([int(c[1]) - 1 for c in tri])
                    tri_material.append(current)
    return {
        "faces": np.asarray(tri_v, dtype=np.int32),
        "face_uv_index": np.asarray(tri_t, dtype=np.int32),
        "uv": np.asarray(uv, dtype=np.float32),
        "face_material": np.asarray(tri_material, dtype=np.int16),
        "materials": np.asarray(materials),
    }


def convert_face_model(folder: str | Path, output: str | Path, progress: bool = True) -> Path:
    """Convert an unpacked `FaceXModel/` folder into the compressed cache file `output` (.npz).

    Deltas are stored as float16 millimetres (about 0.01 mm precision, far below a pixel).
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    index_file = folder / "vertex_indices.json"
    if not (folder / NEUTRAL_OBJ).is_file() or not index_file.is_file():
        raise FaceModelError(
            f"{folder} is not an ICT-FaceKit FaceXModel folder (it needs {NEUTRAL_OBJ} and vertex_indices.json)"
        )
    try:
        indices = json.loads(index_file.read_text())
        expression_names = list(indices["expressions"])
        landmarks = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int32)
    except (ValueError, KeyError) as error:
        raise FaceModelError(f"{index_file} is corrupt ({error})") from None
    extra = sorted(p.stem for p in folder.glob("cheekRaiser_*.obj"))  # shipped, though not in the ARKit list
    expression_names += [name for name in extra if name not in expression_names]

    topology = read_obj_topology(folder / NEUTRAL_OBJ)
    neutral_cm = read_obj_vertices(folder / NEUTRAL_OBJ)
    if neutral_cm.shape != (NUM_VERTICES, 3):
        raise FaceModelError(f"{NEUTRAL_OBJ} has {len(neutral_cm)} vertices, expected {NUM_VERTICES}: corrupt file")

    def deltas(names: list[str], desc: str) -> np.ndarray:
        out = np.empty((len(names), NUM_VERTICES, 3), dtype=np.float16)
        for k, name in enumerate(tqdm(names, desc=desc, disable=not progress, unit="shape")):
            path = folder / f"{name}.obj"
            if not path.is_file():
                raise FaceModelError(f"{path} is missing: the FaceXModel folder is incomplete")
            vertices = read_obj_vertices(path)
            if vertices.shape != (NUM_VERTICES, 3):
                raise FaceModelError(f"{path.name} has {len(vertices)} vertices, expected {NUM_VERTICES}: corrupt")
            out[k] = (vertices - neutral_cm) * CM_TO_MM
        return out

    identity_names = [f"identity{k:03d}" for k in range(NUM_IDENTITY_SHAPES)]
    identity_basis = deltas(identity_names, "identity shapes")
    expression_basis = deltas(expression_names, "expression shapes")

    arrays = {
        "format_version": np.int32(CACHE_FORMAT_VERSION),
        "neutral": (neutral_cm * CM_TO_MM).astype(np.float32),
        "identity_basis": identity_basis,
        "expression_basis": expression_basis,
        "expression_names": np.asarray(expression_names),
        "landmarks": landmarks,
        **topology,
    }
    output = save_face_model_arrays(arrays, output)
    logger.info("face model converted to %s (%.1f MB)", output, output.stat().st_size / 1e6)
    return output


def save_face_model_arrays(arrays: Mapping[str, np.ndarray], output: str | Path) -> Path:
    """Write face model arrays (as `read_face_model_arrays` returns them) to the compressed file `output` (.npz).

    The same arrays give the same bytes: numpy's zip members carry a fixed date (1980-01-01) and mode."""
    output = Path(output)
    # an interrupted conversion never leaves a half-written cache, and processes converting at once (the ranks of
    # one `accelerate launch` on a fresh cache) each write their own file: the last to finish replaces the others'
    partial = output.with_name(f".{output.name}.{os.getpid()}-{secrets.token_hex(4)}.partial.npz")  # numpy wants .npz
    try:
        with replacing(output, partial=partial) as partial:
            np.savez_compressed(partial, **arrays)
    except OSError as error:  # a read-only, full or misplaced cache: say where and how to choose another
        raise FaceModelError(
            f"cannot write the converted face model to {output} ({error.strerror or error}); set PAIN3D_CACHE to a "
            "writable folder with free space (about 17 MB), or pass the packaged model or a converted .npz"
        ) from None
    return output


# The arrays of a converted face model and their shapes: V is the model's vertex count, E the expression shapes,
# F the triangles, T the UV coordinates, M the materials (E may be fewer than ICT ships: see assets.packaged_arrays).
_CACHE_SHAPES: dict[str, tuple] = {
    "format_version": (),
    "neutral": ("V", 3),
    "identity_basis": (NUM_IDENTITY_SHAPES, "V", 3),
    "expression_basis": ("E", "V", 3),
    "expression_names": ("E",),
    "faces": ("F", 3),
    "face_uv_index": ("F", 3),
    "uv": ("T", 2),
    "face_material": ("F",),
    "materials": ("M",),
    "landmarks": (68,),
}
# which count each index array points into (its values must be below it)
_INDEX_RANGES = {"faces": "V", "face_uv_index": "T", "face_material": "M", "landmarks": "V"}
_CACHE_KINDS = {"expression_names": "U", "materials": "U", **{key: "iu" for key in _INDEX_RANGES}}
_KIND_WORDS = {"U": "text", "iu": "integers", "f": "floats"}


def _shape_problem(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The first array whose shape, kind or index range does not fit the others (None when all fit)."""
    sizes: dict[str, int] = {"V": NUM_VERTICES}
    for key, expected in _CACHE_SHAPES.items():
        array = arrays[key]
        kind = _CACHE_KINDS.get(key, "f" if expected else "iu")
        if array.dtype.kind not in kind:
            return f"{key} holds {array.dtype} values, expected {_KIND_WORDS[kind]}"
        if array.ndim != len(expected) or any(
            sizes.setdefault(dim, size) != size if isinstance(dim, str) else dim != size
            for dim, size in zip(expected, array.shape)
        ):
            return f"{key} has shape {array.shape}, expected {tuple(sizes.get(d, d) for d in expected)}"
    for key, count in _INDEX_RANGES.items():
        values = arrays[key]
        if values.size and (values.min() < 0 or values.max() >= sizes[count]):
            return f"{key} holds indices {values.min()}..{values.max()}, outside 0..{sizes[count] - 1}"
    return None


def read_face_model_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a converted face model file (`.npz`) as stored (deltas float16), checked to be complete and to
    fit together; FaceModelError naming the problem and the fix otherwise."""
    if path is None or not str(path).endswith(".npz"):
        raise FaceModelError(
            f"FaceModel.load reads a converted face model cache (.npz), got {path!r}; use "
            "generation.face.assets.load_face_model(path_or_None) to find, convert or download the model"
        )
    cache = Path(path)
    # A cache pain3d converted can be converted again; a .npz the user gave can only be replaced by its source.
    fix = (
        "if it is in the pain3d cache, run `pain3d assets --force` (with the same --face-model or "
        "PAIN3D_FACE_MODEL) to convert it again; otherwise pass the ICT-FaceKit archive or folder instead"
    )
    try:
        with open(cache, "rb") as handle:  # a .npz is a zip archive; anything else numpy would try as a pickle
            if handle.read(4) != b"PK\x03\x04":
                raise FaceModelError(f"{cache} is not a .npz archive (no zip header), so not a face model cache; {fix}")
    except OSError:
        pass  # reported below, as numpy meets it
    try:
        with np.load(cache, allow_pickle=False) as data:
            missing = [key for key in _CACHE_SHAPES if key not in data.files]
            if missing:
                raise FaceModelError(
                    f"{cache} is not a pain3d face model cache (it has no {', '.join(missing[:3])}); {fix}"
                )
            if int(data["format_version"]) != CACHE_FORMAT_VERSION:
                raise FaceModelError(f"{cache} is an old cache format: {fix}")
            arrays = {key: data[key] for key in _CACHE_SHAPES}
    except ValueError as error:
        if "allow_pickle" in str(error):  # numpy's advice (allow pickles) would be unsafe here: do not repeat it
            raise FaceModelError(
                f"{cache} holds Python objects, so it is not a pain3d face model cache (which holds plain arrays "
                f"only); {fix}"
            ) from None
        raise FaceModelError(f"cannot read the face model cache {cache} ({error}): it is corrupt; {fix}") from None
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise FaceModelError(
            f"cannot read the face model cache {cache} ({type(error).__name__}: {error}): it is truncated or "
            f"corrupt; {fix}"
        ) from None
    problem = _shape_problem(arrays)
    if problem:
        raise FaceModelError(f"{cache} is not a face model this pain3d can use ({problem}); {fix}")
    return arrays


@dataclass(frozen=True, eq=False)  # identity semantics: hashable, cheap to use as a cache key
class FaceModel:
    """ICT-FaceKit Light: a neutral head, 100 identity PCA shapes and ARKit expression shapes, in millimetres.

    Vertex indices are the model's own (the 26,719 raw OBJ `v` lines). Identity coefficients are in units of the
    PCA standard deviation; expression weights are 0-1.
    """

    neutral: np.ndarray  # (V, 3) float32, mm
    identity_basis: np.ndarray  # (100, V, 3) float32, mm per unit coefficient
    expression_basis: np.ndarray  # (E, V, 3) float32, mm at weight 1
    expression_names: tuple[str, ...]
    faces: np.ndarray  # (F, 3) int32 triangles over raw vertices
    face_uv_index: np.ndarray  # (F, 3) int32 indices into `uv`, per triangle corner
    uv: np.ndarray  # (T, 2) float32
    face_material: np.ndarray  # (F,) int16 index into `materials`
    materials: tuple[str, ...]
    landmarks: np.ndarray  # (68,) Multi-PIE landmark vertex indices
    # what is computed from the arrays once (solvers, UV atlases, lash anchors), owned by the model it describes
    _derived: dict = field(default_factory=dict, init=False, repr=False)

    def derived(self, key: tuple, build):
        """`build()`, computed once per model and `key`: the one cache of values derived from this model's arrays."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    @classmethod
    def load(cls, path: str | Path) -> "FaceModel":
        """Load a converted face model cache (`.npz`). Only reads arrays: finding, converting or downloading the
        model is `generation.face.assets.load_face_model` (or `pain3d assets`)."""
        arrays = read_face_model_arrays(path)
        return cls(
            neutral=arrays["neutral"],
            # float16 on disk, float32 in memory: posing is a hot path and float16 math is slow on CPUs
            identity_basis=arrays["identity_basis"].astype(np.float32),
            expression_basis=arrays["expression_basis"].astype(np.float32),
            expression_names=tuple(str(n) for n in arrays["expression_names"]),
            faces=arrays["faces"],
            face_uv_index=arrays["face_uv_index"],
            uv=arrays["uv"],
            face_material=arrays["face_material"],
            materials=tuple(str(m) for m in arrays["materials"]),
            landmarks=arrays["landmarks"],
        )

    @property
    def num_vertices(self) -> int:
        return len(self.neutral)

    def region(self, *names: str) -> np.ndarray:
        """Vertex indices of the named regions (keys of REGIONS; a prefix such as 'eyelashes' selects both sides)."""
        selected = [key for key in REGIONS if any(re.fullmatch(rf"{n}(_left|_right)?", key) for n in names)]
        if not selected:
            raise KeyError(f"unknown region(s) {names}; known: {', '.join(REGIONS)}")
        return np.concatenate([np.arange(*REGIONS[key]) for key in selected])

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"the face model has no expression shape {name!r}") from None

    def identity_offsets(self, coefficients: np.ndarray) -> np.ndarray:
        """Identity displacement (V, 3) in mm for PCA coefficients (first len(coefficients) shapes)."""
        coefficients = np.asarray(coefficients, dtype=np.float32)
        basis = self.identity_basis[: len(coefficients)].reshape(len(coefficients), -1)
        return (coefficients @ basis).reshape(-1, 3)

    def expression_offsets(self, weights: Mapping[str, float]) -> np.ndarray:
        """Expression displacement (V, 3) in mm for ARKit blendshape weights."""
        offsets = np.zeros_like(self.neutral)
        for name, weight in weights.items():
            if weight:
                offsets += np.float32(weight) * self.expression_basis[self.expression_index(name)]
        return offsets

    def vertices(self, identity: np.ndarray | None = None, expression: Mapping[str, float] | None = None) -> np.ndarray:
        """Posed vertices (V, 3) in mm: neutral + identity shape + expression blendshapes (linear model)."""
        vertices = self.neutral.copy()
        if identity is not None:
            vertices += self.identity_offsets(identity)
        if expression:
            vertices += self.expression_offsets(expression)
        return vertices
