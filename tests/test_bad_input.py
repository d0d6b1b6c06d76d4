"""Bad input, second round (issue 33): data that is incomplete, corrupt or hostile is refused with one clear line,
never exported in part, served with a wrong label, read from outside its folder, or left to hang a reader. Real
generated folders, real parquet files, real FIFOs, in fresh processes where the command line is what users meet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SMALL = ["--num-identities", "4", "--expressions-per-identity", "1", "--image-size", "32", "--identities-per-shard",
         "1", "--views", "frontal", "--quiet"]  # fmt: skip


def pain3d(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "pain3d", *map(str, args)], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def one_clear_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    for word in words:
        assert word in lines[0], result.stderr[-3000:]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, face_model_file) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "dataset"
    result = pain3d("generate", "-o", out, *SMALL, "--face-model", face_model_file)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(dataset, target)
    return target


def set_label(shard: Path, row: int, column: str, value: float, au: str | None = None) -> str:
    """Rewrite `shard` with one label changed (what a flipped bit in that page gives a reader that does not check
    page checksums); returns the row's sample_id. The schema (and its datasets Features) is kept."""
    table = pq.read_table(shard)
    values = table[column].to_pylist()
    if au is None:
        values[row] = value
    else:
        values[row] = {**values[row], au: value}
    index = table.column_names.index(column)
    table = table.set_column(index, table.schema.field(column), pa.array(values, table.schema.field(column).type))
    pq.write_table(table, shard)
    return table["sample_id"][row].as_py()


# ---------------------------------------------------------------------------------------------- High 4: export
def test_export_of_a_dataset_missing_a_shard_is_refused(copy, tmp_path):
    missing = sorted((copy / "data").glob("train-*.parquet"))[1]
    missing.unlink()
    out = tmp_path / "official"
    one_clear_error(pain3d("export-official", copy, out), missing.name, "missing", "pain3d verify")
    assert not out.exists()  # nothing exported in part
    assert pain3d("export-official", tmp_path / "nowhere", out).returncode == 2


def test_export_of_a_dataset_with_an_edited_shard_is_refused(copy, tmp_path):
    shard = sorted((copy / "data").glob("train-*.parquet"))[0]
    set_label(shard, 1, "pspi", 5.0)
    one_clear_error(pain3d("export-official", copy, tmp_path / "official"), shard.name, "pain3d verify")


# ---------------------------------------------------------------------------------------------- High 5: label ranges
def test_label_ranges_come_from_facs():
    from dataset_builder.integrity import LabelRangeError, check_labels, label_problem
    from generation.facs import ACTION_UNITS, PSPI_MAX

    assert label_problem(PSPI_MAX, {name: unit.max_intensity for name, unit in ACTION_UNITS.items()}) is None
    assert label_problem(0, {"AU4": None}) is None  # an absent label is not out of range
    assert "PSPI 20.0" in label_problem(20.0, {})
    assert "AU43" in label_problem(1, {"AU43": 2.0})
    assert "AU4" in label_problem(1, {"AU4": float("nan")})
    assert label_problem(-0.5, {}) is not None
    with pytest.raises(LabelRangeError, match=r"row b: PSPI 17 .*pain3d verify"):
        check_labels([3, 17], [{}, {}], ["a", "b"])


def test_flipped_pspi_is_an_error_wherever_rows_are_decoded(copy, tmp_path):
    """A PSPI of 20.0 (5.0 with one exponent bit flipped) reaches every reader of this project as one error."""
    from datasets import load_dataset

    from dataset_builder import Pain3D
    from dataset_builder.evaluation import with_transform
    from dataset_builder.export import export_official
    from dataset_builder.integrity import LabelRangeError
    from dataset_builder.transforms import PainTransform
    from modeling_vitpain import ViTPainImageProcessor

    shard = sorted((copy / "data").glob("train-*.parquet"))[0]
    sample_id = set_label(shard, 1, "pspi", 20.0)
    loaded = load_dataset(str(copy), cache_dir=str(tmp_path / "hf"))  # datasets itself serves the value
    assert 20.0 in loaded["train"]["pspi"]

    transform = PainTransform(32, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    with pytest.raises(LabelRangeError, match=rf"row {sample_id}: PSPI 20.0 is outside 0-16.*pain3d verify"):
        transform(loaded["train"][:4])
    rows = with_transform(loaded["train"], ViTPainImageProcessor(size={"height": 32, "width": 32}))
    with pytest.raises(LabelRangeError, match=sample_id):  # what evaluation and training index
        [rows[i] for i in range(len(rows))]
    with pytest.raises(LabelRangeError, match="PSPI 20.0"):
        export_official(loaded, tmp_path / "official")
    assert not (tmp_path / "official").exists()
    builder = Pain3D(config_name="generated", data_dir=str(copy), cache_dir=str(tmp_path / "builder"))
    with pytest.raises(Exception) as raised:
        builder.download_and_prepare()
    chain = [raised.value, raised.value.__cause__, raised.value.__context__]
    assert any(isinstance(error, LabelRangeError) and sample_id in str(error) for error in chain)


def test_an_action_unit_out_of_range_is_an_error(copy):
    from datasets import load_dataset

    from dataset_builder.integrity import LabelRangeError
    from dataset_builder.transforms import PainTransform

    shard = sorted((copy / "data").glob("train-*.parquet"))[0]
    sample_id = set_label(shard, 1, "action_units", 64.0, au="AU4")
    loaded = load_dataset(str(copy), cache_dir=str(copy.parent / "hf"))
    with pytest.raises(LabelRangeError, match=rf"row {sample_id}: AU4 64.0 is outside 0-5"):
        PainTransform(32, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)(loaded["train"][:4])


def test_the_card_tells_users_to_verify_after_a_download(dataset):
    card = (dataset / "README.md").read_text()
    assert "After any download of a folder `pain3d generate` wrote" in card and "run `pain3d verify DIR`" in card


# ---------------------------------------------------------------------------------------------- Medium: evaluate
def test_evaluate_with_a_missing_dataset_model_or_shard_says_so_in_one_line(copy, tiny_model, tmp_path):
    output = ["--output", tmp_path / "evaluation.json"]
    one_clear_error(pain3d("evaluate", "--model", tiny_model, "--dataset", tmp_path / "no-such-dataset", *output),
                    "no-such-dataset")
    one_clear_error(pain3d("evaluate", "--model", tmp_path / "no-such-model", "--dataset", copy, *output),
                    "no-such-model", "cannot load the model")
    shard = sorted((copy / "data").glob("train-*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    one_clear_error(pain3d("evaluate", "--model", tiny_model, "--dataset", copy, "--split", "validation", *output),
                    "truncated or corrupt", "pain3d verify")
    assert not (tmp_path / "evaluation.json").exists()


# ---------------------------------------------------------------------------------------------- High 8: official cache
def test_official_index_cache_notices_an_annotation_edited_in_place(tmp_path):
    from test_official_layout import write_official

    from dataset_builder.official import load_official_layout

    labels = write_official(tmp_path / "root", identities=3, expressions=1, views=1)
    base = next(iter(labels))
    path = tmp_path / "root" / "annotations" / f"{base}_annotations.json"
    path.write_text(json.dumps({"AU4": 5, "AU6": 2, "AU7": 0, "AU9": 1, "AU10": 1, "AU43": 1, "PSPI": 9}))
    cache = tmp_path / "index-cache"

    def pspi_of(result):
        rows = [row for split in result.values() for row in split.select_columns(["sample_id", "pspi"])]
        return next(row["pspi"] for row in rows if row["sample_id"].startswith(base))

    assert pspi_of(load_official_layout(tmp_path / "root", cache_dir=cache)) == 9
    assert pspi_of(load_official_layout(tmp_path / "root", cache_dir=cache)) == 9  # cached
    # Same name, same size: only the file's own mtime (not the folder's) changes.
    path.write_text(json.dumps({"AU4": 2, "AU6": 2, "AU7": 0, "AU9": 1, "AU10": 1, "AU43": 1, "PSPI": 6}))
    assert pspi_of(load_official_layout(tmp_path / "root", cache_dir=cache)) == 6


# ---------------------------------------------------------------------------------------------- Medium: the loaders
LOAD_OFFICIAL = """
import json, sys
from dataset_builder.official import OfficialLayoutError, load_official_layout
try:
    result = load_official_layout(sys.argv[1], cache_dir=sys.argv[2])
except OfficialLayoutError as error:
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"problems": result.report.problems, "rows": sum(map(len, result.values()))}))
"""


def load_in_a_process(script: str, *args, cache: Path) -> dict:
    """Run a loader in a fresh process (a hang is a failure after 120 s, not a stuck suite); its JSON answer."""
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "HF_DATASETS_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_official_loader_reads_only_regular_files_of_bounded_size(tmp_path):
    from test_official_layout import _image_bytes, write_official

    root = tmp_path / "root"
    write_official(root, identities=4, expressions=2, views=1)
    images, annotations = root / "meshes_inpainted", root / "annotations"
    (annotations / "flame_sample_0000_pain_1_annotations.json").unlink()
    os.mkfifo(annotations / "flame_sample_0000_pain_1_annotations.json")  # would block open() forever
    (annotations / "flame_sample_0000_pain_2_annotations.json").unlink()
    os.symlink("/dev/zero", annotations / "flame_sample_0000_pain_2_annotations.json")  # would never end
    (images / "flame_sample_0001_pain_1_textured_view_000_inpainted.png").unlink()
    os.mkfifo(images / "flame_sample_0001_pain_1_textured_view_000_inpainted.png")
    (annotations / "flame_sample_0002_pain_1_annotations.json").write_text('{"AU4": 1' + "0" * 400 + "}")
    (images / "flame_sample_0003_pain_1_view_300000000_inpainted.png").write_bytes(_image_bytes(7))
    answer = load_in_a_process(LOAD_OFFICIAL, root, tmp_path / "cache", cache=tmp_path / "hf")
    problems = answer["problems"]
    malformed = " ".join(problems["malformed_annotation"])
    assert "flame_sample_0000_pain_1" in malformed and "a FIFO" in malformed
    assert "flame_sample_0000_pain_2" in malformed and "character device" in malformed
    assert any("flame_sample_0001_pain_1" in p and "a FIFO" in p for p in problems["unreadable_image"])
    assert any("flame_sample_0002_pain_1" in p for p in problems["invalid_action_units"])
    assert problems["view_out_of_range"] == ["flame_sample_0003_pain_1_view_300000000_inpainted.png"]
    assert answer["rows"] > 0  # the good files are still read

    (images / "flame_sample_0003_pain_1_view_300000000_inpainted.png").unlink()
    (images / "pain3d_views.json").write_text(json.dumps([{"index": 3e8, "name": "far", "yaw": 0, "pitch": 0}]))
    answer = load_in_a_process(LOAD_OFFICIAL, root, tmp_path / "cache", cache=tmp_path / "hf")
    assert "pain3d_views.json" in answer["error"] and "outside 0-9999" in answer["error"]


LOAD_UNBC = """
import json, sys
from dataset_builder.unbc import load_unbc
dataset = load_unbc(sys.argv[1], align=True, image_size=32, progress=False)
print(json.dumps({"problems": dataset.report.problems, "frames": list(dataset["sample_id"])}))
"""


def png_bytes(width=320, height=240, seed=0) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_header(data: bytes, width: int, height: int) -> bytes:
    """`data` (a PNG) with its IHDR declaring width x height (CRC fixed): a decompression bomb's header."""
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def test_unbc_loader_reports_bombs_truncated_frames_and_fifos(tmp_path):
    import numpy as np

    root = tmp_path / "unbc"
    subject, sequence = "001-sy001", "sy001t1aaaff"
    folders = {kind: root / path / subject / sequence for kind, path in (
        ("image", "Images"), ("PSPI", "Frame_Labels/PSPI"), ("FACS", "Frame_Labels/FACS"), ("AAM", "AAM_landmarks"))}
    for folder in folders.values():
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = png_bytes()
    for index in range(1, 7):
        frame = f"{sequence}{index:03d}"
        (folders["image"] / f"{frame}.png").write_bytes(png_bytes(seed=index))
        (folders["PSPI"] / f"{frame}_facs.txt").write_text(f"{0.0 if index == 1 else 2.0:15.7e}\n")
        (folders["FACS"] / f"{frame}_facs.txt").write_text("" if index == 1 else f"{4:15.7e}{2:15.7e}{0:15.7e}{0:15.7e}\n")
        points = np.c_[rng.uniform(100, 220, 66), rng.uniform(60, 180, 66)]
        (folders["AAM"] / f"{frame}_aam.txt").write_text("".join(f"{x:.4f} {y:.4f}\n" for x, y in points))
    (folders["image"] / f"{sequence}003.png").write_bytes(bomb_header(good, 100_000, 100_000))
    (folders["image"] / f"{sequence}004.png").write_bytes(good[: len(good) // 2])  # truncated, and align=True
    (folders["image"] / f"{sequence}005.png").unlink()
    os.mkfifo(folders["image"] / f"{sequence}005.png")
    (folders["PSPI"] / f"{sequence}006_facs.txt").unlink()
    os.mkfifo(folders["PSPI"] / f"{sequence}006_facs.txt")

    answer = load_in_a_process(LOAD_UNBC, root, cache=tmp_path / "hf")
    assert answer["frames"] == [f"{sequence}001", f"{sequence}002"]
    unreadable = answer["problems"]["unreadable_file"]
    for index, words in ((3, "decompression bomb"), (4, "truncated PNG"), (5, "a FIFO"), (6, "a FIFO")):
        assert any(f"{sequence}{index:03d}" in line and words in line for line in unreadable), (index, unreadable)


# ---------------------------------------------------------------------------------------------- Low: export paths
def test_export_refuses_an_image_path_outside_the_dataset_folder(tmp_path):
    from test_dataset_builder import _png, write_generated_dataset

    import numpy as np

    from dataset_builder.export import ExportError, export_official

    outside = tmp_path / "secret.png"  # e.g. a file of someone else's on the same machine
    outside.write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    folder = write_generated_dataset(tmp_path / "generated", identities=3, expressions=1)
    shard = sorted((folder / "data").glob("train-*.parquet"))[0]
    for path in (str(outside), "../secret.png"):
        table = pq.read_table(shard)
        images = table["image"].to_pylist()
        pain_row = table["expression_index"].to_pylist().index(1)
        images[pain_row] = {"bytes": None, "path": path}
        index = table.column_names.index("image")
        pq.write_table(table.set_column(index, table.schema.field("image"),
                                        pa.array(images, table.schema.field("image").type)), shard)
        with pytest.raises(ExportError, match="points outside the dataset folder"):
            export_official(folder, tmp_path / "official")
        assert not (tmp_path / "official").exists()
