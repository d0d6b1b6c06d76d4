"""Nothing the user had is deleted, replaced or silently mixed: bad flags, --overwrite, --resume, export-official and
`pain3d verify` on real generated folders, in fresh processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

SMALL = ["--num-identities", "4", "--expressions-per-identity", "1", "--image-size", "32", "--identities-per-shard",
         "2", "--views", "frontal", "--quiet"]  # fmt: skip


def pain3d(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "pain3d", *map(str, args)], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def generate(output, *extra, face_model):
    return pain3d("generate", "-o", output, *SMALL, "--face-model", face_model, *extra)


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_clear_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for word in words:
        assert word in result.stderr, result.stderr[-3000:]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, face_model_file) -> Path:
    out = tmp_path_factory.mktemp("lost") / "dataset"
    result = generate(out, face_model=face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


# ---------------------------------------------------------------------------------------------- 1. a bad --seed
def test_bad_seed_deletes_nothing_and_creates_nothing(copy, tmp_path, face_model_file):
    before = tree(copy)
    one_clear_error(generate(copy, "--overwrite", "--seed", "-1", face_model=face_model_file), "--seed")
    assert tree(copy) == before
    one_clear_error(generate(tmp_path / "new", "--seed", "-1", face_model=face_model_file), "--seed")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------------------- 2. resume, nothing left
def test_resume_with_no_shard_left_finishes_card_and_preview(copy, face_model_file):
    shards = tree(copy / "data")
    (copy / "README.md").unlink()
    (copy / "preview.png").unlink()
    result = generate(copy, "--resume", face_model=face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (copy / "README.md").is_file() and (copy / "preview.png").is_file()
    assert tree(copy / "data") == shards
    again = generate(copy, "--resume", face_model=face_model_file)  # a finished dataset: nothing to do, exit 0
    assert again.returncode == 0, again.stderr[-3000:]


# ---------------------------------------------------------------------------------------------- 3. --overwrite
def test_overwrite_keeps_user_files_anywhere_in_the_folder(copy, face_model_file):
    for user_file in (copy / "data" / "my_labels.csv", copy / "plots" / "mine.png"):
        user_file.write_text("the user's own work")
        before = tree(copy)
        one_clear_error(generate(copy, "--overwrite", face_model=face_model_file), str(user_file.relative_to(copy)))
        assert tree(copy) == before
        user_file.unlink()
    (copy / "README.md").write_text("my edited card")  # a file pain3d wrote, changed since: not pain3d's any more
    one_clear_error(generate(copy, "--overwrite", face_model=face_model_file), "README.md")
    assert (copy / "README.md").read_text() == "my edited card"


def test_overwrite_refuses_a_folder_pain3d_did_not_write(tmp_path, face_model_file):
    folder = tmp_path / "theirs"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("my dataset")
    (folder / "data" / "train.csv").write_text("a,b\n1,2\n")
    before = tree(folder)
    one_clear_error(generate(folder, "--overwrite", face_model=face_model_file), "nothing was deleted")
    assert tree(folder) == before


def test_overwrite_replaces_what_pain3d_wrote(copy, face_model_file):
    result = generate(copy, "--overwrite", "--seed", "5", face_model=face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((copy / "generation_config.json").read_text())["config"]["seed"] == 5
    assert pain3d("verify", copy).returncode == 0


# ---------------------------------------------------------------------------------------------- 4. export-official
def test_export_overwrite_from_a_corrupt_source_keeps_the_old_export(dataset, tmp_path):
    out = tmp_path / "official"
    assert pain3d("export-official", dataset, out).returncode == 0
    before = tree(out)
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    shard = sorted((broken / "data").glob("train-*.parquet"))[-1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated
    one_clear_error(pain3d("export-official", broken, out, "--overwrite"), shard.name, "truncated or corrupt")
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left behind


def test_export_overwrite_keeps_user_files_in_the_export_folders(dataset, tmp_path):
    out = tmp_path / "official"
    assert pain3d("export-official", dataset, out).returncode == 0
    for user_file in (out / "meshes_inpainted" / "flame_sample_9999_pain_1_mine.png", out / "annotations" / "x.json"):
        user_file.write_text("the user's own")
        before = tree(out)
        one_clear_error(pain3d("export-official", dataset, out, "--overwrite"), user_file.name, "Nothing was deleted")
        assert tree(out) == before
        user_file.unlink()
    (out / "notes.txt").write_text("beside the export, left alone")
    assert pain3d("export-official", dataset, out, "--overwrite").returncode == 0
    assert (out / "notes.txt").read_text() == "beside the export, left alone"


# ---------------------------------------------------------------------------------------------- 5. another face model
def test_resume_refuses_another_face_model(copy, tmp_path, face_model_file):
    other = tmp_path / "other-model.npz"
    other.write_bytes(face_model_file.read_bytes() + b"\0")  # another file: another sha256
    (copy / "README.md").unlink()
    before = tree(copy)
    one_clear_error(generate(copy, "--resume", face_model=other), "another face model")
    assert tree(copy) == before


# ---------------------------------------------------------------------------------------------- 6. corrupt shards
def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_shards_are_named_by_verify_and_rendered_again_by_resume(copy, face_model_file):
    shards = tree(copy / "data")
    assert pain3d("verify", copy).returncode == 0
    image_shard, label_shard = sorted((copy / "data").glob("*.parquet"))[:2]
    _flip(image_shard, image_shard.stat().st_size // 3)  # inside the image bytes
    metadata = pq.read_metadata(label_shard)
    pspi = next(i for i in range(metadata.num_columns) if metadata.schema.column(i).name == "pspi")
    chunk = metadata.row_group(0).column(pspi)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    _flip(label_shard, start + chunk.total_compressed_size - 3)  # a one-bit flip in the last pspi page
    with pytest.raises(OSError, match="(?i)checksum|CRC"):
        pq.read_table(label_shard, columns=["pspi"], page_checksum_verification=True)

    checked = pain3d("verify", copy)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert image_shard.name in checked.stderr and label_shard.name in checked.stderr and "--resume" in checked.stderr
    resumed = generate(copy, "--resume", face_model=face_model_file)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "again" in resumed.stderr and tree(copy / "data") == shards
    assert pain3d("verify", copy).returncode == 0


# ---------------------------------------------------------------------------------------------- one line, not a traceback
def test_ctrl_c_during_generate_with_workers_is_one_line(tmp_path, face_model_file):
    out = tmp_path / "interrupted"
    # enough identities that the run is still rendering when the interrupt below arrives
    command = [sys.executable, "-m", "pain3d", "generate", "-o", str(out), *SMALL, "--num-identities", "200",
               "--workers", "2", "--face-model", str(face_model_file)]
    # a terminal's Ctrl-C goes to the whole foreground process group: the main process and its workers
    # as from a terminal: Ctrl-C handled by default, even when this test runs under a parent that ignores SIGINT
    # (a background job or nohup), which the child would otherwise inherit
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "data").glob("*.parquet")):
        time.sleep(0.2)  # until the first shard is written: the workers are up and rendering
    assert process.poll() is None, "the run ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert [line for line in stderr.splitlines() if "interrupted" in line] == [
        "pain3d generate: interrupted; rerun with --resume"
    ]


def test_corrupt_generation_config_on_resume(copy, face_model_file):
    (copy / "generation_config.json").write_text('{"config": {"num_identities": 4,')
    one_clear_error(generate(copy, "--resume", face_model=face_model_file), "generation_config.json", "--overwrite")


def test_export_to_an_unwritable_place_is_one_line(dataset, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_clear_error(pain3d("export-official", dataset, blocker / "out"), "cannot write")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image-size", "0"], "--image-size"),
        (["--output", "{tmp}/sheet.xyz"], ".xyz"),
        (["--output", "{tmp}/a-file/sheet.png"], "cannot write"),
    ],
)
def test_preview_bad_output_is_one_line(tmp_path, face_model_file, args, message):
    (tmp_path / "a-file").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--output" not in args:
        args += ["--output", str(tmp_path / "sheet.png")]
    one_clear_error(pain3d("preview", "--face-model", face_model_file, *args), message)


def test_preview_says_which_file_it_wrote(tmp_path, face_model_file):
    result = pain3d("preview", "--face-model", face_model_file, "--image-size", "32", "--output", tmp_path / "sheet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {tmp_path / 'sheet.png'} " in result.stdout and (tmp_path / "sheet.png").is_file()


def test_cache_folder_that_is_a_file_is_one_line(tmp_path, face_model_source):
    cache = tmp_path / "cache-file"
    cache.write_text("x")
    one_clear_error(pain3d("info", env={"PAIN3D_CACHE": str(cache)}), "PAIN3D_CACHE")
    result = pain3d("assets", "--face-model", face_model_source, env={"PAIN3D_CACHE": str(cache)})
    one_clear_error(result, "PAIN3D_CACHE")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--views", "a:10:5:3"], "NAME:YAW[:PITCH]"),
        (["--views", ":10"], "NAME:YAW[:PITCH]"),
        (["--au", "AU4=3", "--au", "au4=2"], "AU4 is given twice"),
    ],
)
def test_ambiguous_generation_flags_are_refused(tmp_path, face_model_file, args, message):
    one_clear_error(generate(tmp_path / "out", *args, face_model=face_model_file), message)
    assert not (tmp_path / "out").exists()


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    from generation.manifest import replacing

    target = tmp_path / "sub" / "result.json"
    with replacing(target) as partial:
        assert partial.parent == target.parent and partial.name.endswith(".partial") and not target.exists()
        partial.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError, match="interrupted"):
        with replacing(target) as partial:
            partial.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    with replacing(target) as one, replacing(target) as two:  # writers in parallel never share a temporary file
        assert one != two
        one.write_text("one")
        two.write_text("two")
    assert target.read_text() == "one" and sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
