"""Shared fixtures. The tests render from the face model packaged with pain3d, as a plain install does; the tests of
conversion read the ICT-FaceKit archive from $PAIN3D_FACE_MODEL or, failing that, the copy beside this checkout at
../shared/assets/ (where CI has it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "assets" / "ict-facekit-light.tar.xz"


@pytest.fixture(scope="session")
def face_model_source() -> Path:
    source = Path(os.environ.get("PAIN3D_FACE_MODEL") or SHARED_ARCHIVE)
    if not source.exists():
        raise RuntimeError(
            f"the tests need the ICT-FaceKit face model: set PAIN3D_FACE_MODEL to the archive (looked at {source})"
        )
    return source


@pytest.fixture(scope="session")
def face_model_file(tmp_path_factory) -> Path:
    """The model packaged with pain3d; PAIN3D_CACHE is this session's own folder unless set."""
    from generation.face.assets import PACKAGED_FACE_MODEL

    if not os.environ.get("PAIN3D_CACHE"):
        os.environ["PAIN3D_CACHE"] = str(tmp_path_factory.mktemp("pain3d-cache"))
    return PACKAGED_FACE_MODEL


@pytest.fixture(scope="session")
def converted_face_model_file(face_model_source, face_model_file) -> Path:
    """The full conversion of the ICT-FaceKit archive (all 55 expression shapes), in the session's cache."""
    from generation.face.assets import prepare_face_model

    return prepare_face_model(face_model_source, progress=False)


@pytest.fixture(scope="session")
def face_model(face_model_file):
    from generation import FaceModel

    return FaceModel.load(face_model_file)


@pytest.fixture(scope="session")
def renderer(face_model):
    from generation import FaceRenderer

    with FaceRenderer(face_model, image_size=128) as r:
        yield r


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight ViTPain folder (2 layers, 32 px) saved with its image processor, as `save_pretrained`
    writes it."""
    import torch

    from modeling_vitpain import ViTPainConfig, ViTPainImageProcessor, ViTPainModel

    folder = tmp_path_factory.mktemp("tiny-model") / "vitpain-tiny"
    backbone = {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 37, "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(0)
    model = ViTPainModel(ViTPainConfig(backbone_config=backbone, head_hidden_size=16, au_head_hidden_size=16))
    model.save_pretrained(folder)
    ViTPainImageProcessor.from_model_config(model.config).save_pretrained(folder)
    return folder
