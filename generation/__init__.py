"""3DPain generation: the ICT face model, the FACS rig and PSPI, rendering and contact sheets."""

from .face_model import FaceModel, FaceModelError
from .facs import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, PSPI_MAX, ActionUnitError, blendshape_weights, pspi
from .render import DEFAULT_VIEWS, FaceRenderer, Lighting, Render, View, displacement_mm
from .rig import pose_face, sample_identity

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
