import os
import subprocess
import sys

import numpy as np
from PIL import Image


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pain3d", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_preview_sheet_in_fresh_process(tmp_path, face_model_file):
    out = tmp_path / "sheet.png"
    result = run_cli(
        "preview", "--sheet", "--output", str(out), "--seed", "2", "--au", "AU4=4", "--au", "AU43=1",
        "--image-size", "96", "--face-model", str(face_model_file),
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
        env={"PAIN3D_FACE_MODEL": str(tmp_path / "gone.tar.xz"), "PAIN3D_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 2 and "gone.tar.xz does not exist" in result.stderr
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


def test_a_converted_face_model_is_found_in_the_cache(tmp_path, face_model_file):
    """`pain3d assets --face-model PATH` and `generate` store `ict-facekit-light-<hash>.npz`: later commands without
    PAIN3D_FACE_MODEL find it offline, and `pain3d info` names the file."""
    import shutil

    cache = tmp_path / "cache"
    cache.mkdir()
    converted = cache / "ict-facekit-light-0123456789ab.npz"
    shutil.copyfile(face_model_file, converted)
    env = {"PAIN3D_FACE_MODEL": "", "PAIN3D_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    info = run_cli("info", env=env)
    assert info.returncode == 0 and f"face model file: {converted} (from the cache)" in info.stdout
    result = run_cli("preview", "-o", str(tmp_path / "sheet.png"), "--image-size", "64", env=env)
    assert result.returncode == 0, result.stderr
    empty = run_cli("info", env={**env, "PAIN3D_CACHE": str(tmp_path / "empty")})
    assert "(packaged with pain3d)" in empty.stdout  # nothing given, nothing cached


def test_processes_converting_the_face_model_at_once_all_succeed(tmp_path, face_model_source):
    """The ranks of an `accelerate launch` on a fresh cache all convert the model at once: each writes its own
    temporary file (a shared one crashed the slower process), and one cache file is left, with no leftovers."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PAIN3D_FACE_MODEL": "", "PAIN3D_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pain3d", "assets", "--face-model", str(face_model_source)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL) for _ in range(3)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert [path.suffix for path in cache.iterdir()] == [".npz"]


def test_version_and_help():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"pain3d {version('pain3d')}"
    generate = run_cli("generate", "--help").stdout
    assert "(default: 256)" in generate and "(default: 10)" in generate
    assert "number of synthetic identities" in generate
    evaluate = run_cli("evaluate", "--help").stdout
    assert "--predictions FILE.jsonl" in evaluate


def test_the_wheel_ships_the_card_templates_and_metrics(tmp_path):
    """A non-editable install needs the card templates (`hub_cards/`) and the `evaluate` metric module as package
    data of the packages that use them, and installs no generic top-level names such as `metrics` or `hub_cards`
    (`.ci/wheel_smoke` installs such a wheel in a clean venv and generates a dataset with its card)."""
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("pain3d-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"dataset_builder/dataset_card.md", "modeling_vitpain/model_card.md", "dataset_builder/pain_metrics.py"} <= names
    top_level = {name.split("/")[0] for name in names if ".dist-info" not in name.split("/")[0]}
    assert top_level == {"generation", "dataset_builder", "modeling_vitpain", "pain3d"}
    # the packaged templates are the files themselves, not links back into a checkout
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("dataset_builder/dataset_card.md") == (repo / "hub_cards" / "dataset_card.md").read_bytes()
