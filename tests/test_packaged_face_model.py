"""The face model packaged with pain3d: made again from the pinned archive it is the same bytes, a plain install
renders from it what the archive renders, and it holds only what the generator reads, with ICT's MIT license."""

import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from generation.face.assets import PACKAGED_FACE_MODEL
from generation.face.model import FaceModel, read_face_model_arrays
from generation.facs import ACTION_UNITS

# Where CI and the project's machines keep the pinned ICT-FaceKit Light archive: beside the checkout.
PINNED_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "ict-facekit-light.tar.xz"
TINY = ("--num-identities", "2", "--expressions-per-identity", "1", "--image-size", "48", "--seed", "3", "--quiet")


def pain3d(*args, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pain3d", *map(str, args)], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=600)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_packaged_file_is_made_again_from_the_pinned_archive(tmp_path, face_model_file):
    assert PINNED_ARCHIVE.is_file(), (
        f"this test makes the packaged face model again from the pinned ICT-FaceKit archive, which is not at "
        f"{PINNED_ARCHIVE} (CI and the project's machines keep it there)"
    )
    again = tmp_path / "again.npz"
    made = pain3d("assets", "--face-model", PINNED_ARCHIVE, "--export-packaged", again, env=dict(os.environ))
    assert made.returncode == 0, made.stderr[-3000:]
    if again.read_bytes() != face_model_file.read_bytes():
        made_arrays, shipped = read_face_model_arrays(again), read_face_model_arrays(face_model_file)
        same = made_arrays.keys() == shipped.keys() and all(
            made_arrays[k].dtype == shipped[k].dtype and np.array_equal(made_arrays[k], shipped[k]) for k in shipped
        )
        raise AssertionError(
            f"{face_model_file} is not what `pain3d assets --export-packaged` makes from {PINNED_ARCHIVE} "
            + (f"(the arrays are equal, the compressed bytes are not: this zlib is {zlib.ZLIB_RUNTIME_VERSION})"
               if same else "(the arrays differ): make it again as its README says and explain why in the commit")
        )


def test_a_plain_install_renders_from_the_packaged_model_what_the_archive_renders(
    tmp_path, face_model_file, converted_face_model_file, face_model_source
):
    """No --face-model, no PAIN3D_FACE_MODEL, an empty cache, offline: `pain3d info` names the packaged model and
    `pain3d generate` renders from it shards byte for byte equal to those from the archive's full conversion; the
    dataset records the model's sha256, so resuming it with the archive's model is refused."""
    plain_env = {**os.environ, "PAIN3D_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    plain_env.pop("PAIN3D_FACE_MODEL", None)
    info = pain3d("info", env=plain_env)
    assert info.returncode == 0, info.stderr
    assert f"face model file: {face_model_file} (packaged with pain3d)" in info.stdout
    assert f"face model sha256: {sha256(face_model_file)}" in info.stdout

    plain = pain3d("generate", "-o", tmp_path / "plain", *TINY, env=plain_env)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert not (tmp_path / "empty-cache").exists()  # nothing converted, nothing downloaded
    archive_env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the session's cache holds the archive's conversion
    archive = pain3d("generate", "-o", tmp_path / "archive", *TINY, "--face-model", face_model_source, env=archive_env)
    assert archive.returncode == 0, archive.stderr[-3000:]

    shards = sorted(path.name for path in (tmp_path / "plain" / "data").glob("*.parquet"))
    assert shards and shards == sorted(path.name for path in (tmp_path / "archive" / "data").glob("*.parquet"))
    for name in shards:
        assert (tmp_path / "plain/data" / name).read_bytes() == (tmp_path / "archive/data" / name).read_bytes(), name
    recorded = json.loads((tmp_path / "plain" / "generation_config.json").read_text())["face_model"]
    assert recorded == sha256(face_model_file) != sha256(converted_face_model_file)
    other = pain3d("generate", "-o", tmp_path / "plain", *TINY, "--resume", "--face-model", converted_face_model_file,
                   env=plain_env)
    assert other.returncode == 2 and "another face model" in other.stderr and "Traceback" not in other.stderr


def test_the_packaged_file_holds_what_the_generator_reads_and_the_license(face_model, converted_face_model_file):
    """Every array the generator reads, and of the expression shapes those the AU table drives, in the model's
    order; ICT's MIT license travels beside it."""
    driven = {shape for unit in ACTION_UNITS.values() for shape in unit.blendshapes}
    full = FaceModel.load(converted_face_model_file)
    assert face_model.expression_names == tuple(name for name in full.expression_names if name in driven)
    assert len(face_model.expression_names) == len(driven) == 22
    for name in face_model.expression_names:
        assert np.array_equal(face_model.expression_basis[face_model.expression_index(name)],
                              full.expression_basis[full.expression_index(name)]), name
    for key in ("neutral", "identity_basis", "faces", "face_uv_index", "uv", "face_material", "landmarks"):
        assert np.array_equal(getattr(face_model, key), getattr(full, key)), key
    assert face_model.materials == full.materials
    assert PACKAGED_FACE_MODEL.stat().st_size < 15.5e6  # 15.0 MB; all 55 shapes would be 16.5 MB
    notice = (PACKAGED_FACE_MODEL.parent / "LICENSE").read_text()
    assert notice.startswith("MIT License") and "Copyright (c) 2020 USC Institute for Creative Technologies" in notice
