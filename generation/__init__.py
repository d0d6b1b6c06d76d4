"""3DPain generation, laid out like its data flow:

    face/        the ICT-FaceKit model (arrays), where it comes from, mesh geometry, the FACS rig
    sampling/    identities (demographics, appearance, shape, lighting, split) and pain AU configurations
    texture/     skin textures over the UV atlas: a registry of backends (procedural, diffusion)
    background/  procedural and inpainted backgrounds, and the diffusion prompts
    render.py    pyrender passes: RGB, mask, millimetre heatmap, landmarks
    pipeline.py  one identity -> dataset rows; writer.py: shards, resume, card; cli.py: `pain3d`

`facs`, `demographics`, `views` (and `rng`, `errors`) are leaves that import nothing else from the project, so the
data side (`dataset_builder`) can read the AU table, the demographic groups and the view names without loading
the renderer. The names below are imported on first use for the same reason.
"""

from __future__ import annotations

import importlib

from .facs import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, PSPI_MAX, ActionUnitError, blendshape_weights, pspi
from .views import DEFAULT_VIEWS, Lighting, View

_LAZY = {
    "FaceModel": "generation.face.model",
    "FaceModelError": "generation.face.model",
    "FaceRenderer": "generation.render",
    "Render": "generation.render",
    "displacement_mm": "generation.render",
    "pose_face": "generation.face.rig",
    "sample_identity": "generation.face.rig",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'generation' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ACTION_UNITS",
    "DEFAULT_VIEWS",
    "EXTENDED_AUS",
    "PAIN_AUS",
    "PSPI_MAX",
    "ActionUnitError",
    "FaceModel",
    "FaceModelError",
    "FaceRenderer",
    "Lighting",
    "Render",
    "View",
    "blendshape_weights",
    "displacement_mm",
    "pose_face",
    "pspi",
    "sample_identity",
]
