"""One writer per folder, and what a run trusts (issue 33, high 1-3 and medium items): a second writer is refused
with a line naming the first, `--resume` refuses an edited generation_config.json, `verify` fails an unplanned shard,
a manifest with wrong value types and an absurd --num-identities are one line each, and SIGTERM with two workers
stops with one line. Each through the `pain3d` command in a fresh process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generation.manifest import LOCK_NAME, writer_lock

TINY = ["--num-identities", "3", "--expressions-per-identity", "1", "--views", "frontal", "--image-size", "48",
        "--identities-per-shard", "1", "--quiet"]


def pain3d(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "pain3d", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600, **kwargs)


def one_line_error(result, *fragments):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def finished(tmp_path_factory, face_model_file):
    out = tmp_path_factory.mktemp("one-writer") / "d"
    result = pain3d("generate", "-o", out, *TINY, "--seed", 7, "--face-model", face_model_file)
    assert result.returncode == 0, result.stderr
    return out


def test_a_second_writer_is_refused_naming_the_first(finished, tmp_path, face_model_file):
    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with writer_lock(copy, "pain3d generate (a test)"):
        result = pain3d("generate", "-o", copy, *TINY, "--seed", 8, "--overwrite", "--face-model", face_model_file)
    one_line_error(result, "being written by", f"pid {os.getpid()}", "one writer at a time")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before  # nothing touched
    assert not (copy / LOCK_NAME).exists()  # released


def test_a_running_generate_holds_the_folder(tmp_path, face_model_file):
    out = tmp_path / "running"
    first = subprocess.Popen([sys.executable, "-m", "pain3d", "generate", "-o", str(out), *TINY, "--seed", "7",
                              "--num-identities", "12", "--face-model", str(face_model_file)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((out / "data").glob("*.parquet")) and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before the test could race it"
        second = pain3d("generate", "-o", out, *TINY, "--seed", 8, "--overwrite", "--face-model", face_model_file)
        one_line_error(second, "being written by", f"pid {first.pid}")
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0, first.stderr.read()
    assert pain3d("verify", out).returncode == 0  # the first run's dataset, whole and alone


def test_resume_refuses_an_edited_config(finished, tmp_path, face_model_file):
    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    record = json.loads((copy / "generation_config.json").read_text())
    record["config"]["seed"] = 8
    (copy / "generation_config.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    result = pain3d("generate", "-o", copy, *TINY, "--seed", 8, "--resume", "--face-model", face_model_file)
    one_line_error(result, "generation_config.json is not the one pain3d wrote")


def test_verify_fails_an_unplanned_shard(finished, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    first = sorted((copy / "data").glob("train-*.parquet"))[0]
    shutil.copy(first, copy / "data" / "train-00099-of-00100.parquet")
    result = pain3d("verify", copy)
    assert result.returncode == 1
    assert "train-00099-of-00100.parquet: not part of this dataset" in result.stderr


def test_a_manifest_with_wrong_types_is_one_line(finished, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    manifest = json.loads((copy / "pain3d_manifest.json").read_text())
    manifest["files"]["generation_config.json"]["size"] = "big"
    (copy / "pain3d_manifest.json").write_text(json.dumps(manifest))
    one_line_error(pain3d("verify", copy), "unreadable", "not {size: int, sha256: str}")


def test_an_absurd_identity_count_is_refused_before_writing(tmp_path, face_model_file):
    result = pain3d("generate", "-o", tmp_path / "huge", "--num-identities", 1_000_000_000, "--face-model",
                    face_model_file)
    one_line_error(result, "--num-identities must be within 1-100,000")
    assert not (tmp_path / "huge").exists()


def test_sigterm_with_two_workers_is_one_line(tmp_path, face_model_file):
    out = tmp_path / "term"
    run = subprocess.Popen([sys.executable, "-m", "pain3d", "generate", "-o", str(out), *TINY, "--workers", "2",
                            "--num-identities", "40", "--face-model", str(face_model_file)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((out / "data").glob("*.parquet")) and time.time() < deadline and run.poll() is None:
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated; rerun with --resume" in stderr, stderr
    assert not (out / LOCK_NAME).exists()


def test_accelerate_starting_one_process_of_two_warns(tmp_path, face_model_file):
    """On a CPU machine `accelerate launch --num_processes 2 --cpu` starts one process: the command says so."""
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run(
        [str(accelerate), "launch", "--num_processes", "2", "--cpu", "--mixed_precision", "no", "--dynamo_backend",
         "no", "--num_machines", "1", "-m", "pain3d", "generate", "-o", str(tmp_path / "acc"), *TINY,
         "--num-identities", "1", "--face-model", str(face_model_file)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accelerate launch started 1 process, not the 2 asked" in result.stderr
    assert "--multi_gpu" in result.stderr


def test_resume_refuses_a_folder_of_another_generator_revision(finished, tmp_path, face_model_file):
    """Same parameters, other bytes (an older pain3d): the record's revision must match, or shards would mix."""
    from generation.manifest import record

    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    saved = json.loads((copy / "generation_config.json").read_text())
    del saved["generator_revision"]  # as written before revisions were recorded
    (copy / "generation_config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    record(copy, ["generation_config.json"])  # recorded as that pain3d would have: only the revision tells them apart
    result = pain3d("generate", "-o", copy, *TINY, "--seed", 7, "--resume", "--face-model", face_model_file)
    one_line_error(result, "generated by generator revision 1")


def test_a_full_disk_while_finalising_leaves_no_truncated_preview(finished, tmp_path, monkeypatch):
    """ENOSPC while the preview sheet is written: one error naming the fix, and no half-written preview.png (which
    `verify` would record and then pass)."""
    import errno

    from matplotlib.figure import Figure

    from dataset_builder.finalize import finalize_dataset_folder
    from generation.errors import OutputError

    copy = tmp_path / "d"
    shutil.copytree(finished, copy)
    (copy / "preview.png").unlink()

    def full_disk(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")  # a part of the file reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(OutputError, match="No space left on device.*free some space"):
        finalize_dataset_folder(copy)
    assert not (copy / "preview.png").exists()
    assert not [p for p in copy.rglob("*.partial")]


def test_a_folder_path_with_a_newline_keeps_the_cards_snippet_valid_python(finished, tmp_path):
    import ast

    from dataset_builder.card import write_dataset_card

    odd = tmp_path / 'two\nlines "quoted"'
    shutil.copytree(finished, odd)
    card = write_dataset_card(odd).read_text()
    line = next(line for line in card.splitlines() if "load_dataset(" in line and "=" in line)
    call = ast.parse(line.strip()).body[0].value  # one line, and valid Python
    assert call.args[0].value == str(odd)


def test_a_full_disk_while_writing_a_shard_is_one_line_and_leaves_no_shard(tmp_path, face_model_file, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    from generation.config import GenerationConfig
    from generation.errors import OutputError
    from generation.writer import generate_dataset

    def full_disk(self, table, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
    config = GenerationConfig(num_identities=1, expressions_per_identity=1, image_size=48,
                              views=GenerationConfig.__dataclass_fields__["views"].default[:1])
    with pytest.raises(OutputError, match="No space left on device.*--resume"):
        generate_dataset(tmp_path / "d", config, face_model_file, progress=False)
    assert not list((tmp_path / "d" / "data").glob("*.parquet*"))
    assert not (tmp_path / "d" / LOCK_NAME).exists()
