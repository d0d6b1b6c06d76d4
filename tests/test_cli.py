import os
import subprocess
import sys

import numpy as np
from PIL import Image


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "generation.cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_preview_sheet_in_fresh_process(tmp_path, face_model_file):
    out = tmp_path / "sheet.png"
    result = run_cli(
        "preview", "--output", str(out), "--seed", "2", "--au", "AU4=4", "--au", "AU43=1", "--image-size", "96",
        "--face-model", str(face_model_file),
    )
    assert result.returncode == 0, result.stderr
    assert "PSPI 5" in result.stdout
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape[0] > 400 and sheet.shape[1] > 400
    assert sheet.std() > 20  # pictures, not a blank canvas


def test_preview_rejects_bad_au_without_writing(tmp_path, face_model_file):
    out = tmp_path / "sheet.png"
    for bad, message in (("AU5=2", "unknown action unit"), ("AU4=7", "within 0-5"), ("AU43=0.5", "binary")):
        result = run_cli("preview", "-o", str(out), "--au", bad, "--face-model", str(face_model_file))
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_missing_face_model_is_one_clear_error(tmp_path):
    result = run_cli(
        "preview", "-o", str(tmp_path / "x.png"),
        env={"PAIN3D_FACE_MODEL": "", "PAIN3D_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert "--face-model" in result.stderr and "PAIN3D_FACE_MODEL" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("assets", "--face-model", str(tmp_path / "missing.tar.xz"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_assets_and_info(face_model_file):
    result = run_cli("assets", "--face-model", str(face_model_file))
    assert result.returncode == 0, result.stderr
    assert "26719 vertices" in result.stdout and "MIT" in result.stdout
    info = run_cli("info")
    assert info.returncode == 0 and "AU43" in info.stdout and "eyeBlink_L" in info.stdout
