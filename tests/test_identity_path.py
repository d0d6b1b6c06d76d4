"""One identity path: `pain3d preview --seed S --identity I --view V` (the console script, in a fresh process) writes
exactly the `neutral_image` that a dataset generated with seed S stores for identity I in view V, and `--au` with an
expression's labels gives exactly that expression's `image`."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

SEED, SIZE = 5, 64


def console_script() -> str:
    path = Path(sys.executable).with_name("pain3d")
    return str(path) if path.is_file() else shutil.which("pain3d")


def run(*args):
    result = subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, face_model_file):
    out = tmp_path_factory.mktemp("identity-path") / "d"
    run("generate", "-o", out, "--num-identities", 3, "--expressions-per-identity", 1, "--image-size", SIZE,
        "--seed", SEED, "--quiet", "--face-model", face_model_file)
    rows = {}
    for shard in (out / "data").glob("*.parquet"):
        for row in pq.read_table(shard).to_pylist():
            rows[row["sample_id"]] = row
    return rows


def pixels(png: bytes | Path) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB"))


@pytest.mark.parametrize("identity, view", [(2, "left"), (1, "frontal")])
def test_preview_is_the_datasets_neutral_image(dataset, tmp_path, face_model_file, identity, view):
    out = tmp_path / "neutral.png"
    run("preview", "--seed", SEED, "--identity", identity, "--view", view, "--image-size", SIZE, "-o", out,
        "--face-model", face_model_file)
    stored = pixels(dataset[f"id_{identity:05d}_e00_{view}"]["neutral_image"]["bytes"])
    assert np.array_equal(pixels(out), stored)


def test_preview_with_an_expressions_labels_is_its_image(dataset, tmp_path, face_model_file):
    row = dataset["id_00000_e01_right"]
    aus = [f"{name}={value:g}" for name, value in row["action_units"].items() if value]
    assert aus, "the expression has AUs"
    out = tmp_path / "pain.png"
    run("preview", "--seed", SEED, "--identity", 0, "--view", "right", "--image-size", SIZE, "-o", out,
        "--face-model", face_model_file, *[arg for au in aus for arg in ("--au", au)])
    assert np.array_equal(pixels(out), pixels(row["image"]["bytes"]))
    assert not np.array_equal(pixels(out), pixels(row["neutral_image"]["bytes"]))  # it is posed


def test_preview_bad_identity_and_view_are_one_line(tmp_path, face_model_file):
    for args, message in ((("--identity", "-1"), "--identity"), (("--view", "up"), "unknown --view"),
                          (("--seed", "-1"), "--seed")):
        result = subprocess.run([console_script(), "preview", "-o", tmp_path / "x.png", "--face-model",
                                 face_model_file, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "x.png").exists()
