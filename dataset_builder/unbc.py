"""Reader for the UNBC-McMaster Shoulder Pain Expression Archive as its authors ship it (Lucey et al., FG 2011):

    <root>/Images/<subject>/<sequence>/<sequence><FFF>.png              e.g. Images/042-ll042/ll042t1aaaff/ll042t1aaaff001.png
    <root>/Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt      one float: the frame's PSPI
    <root>/Frame_Labels/FACS/<subject>/<sequence>/<frame>_facs.txt      rows "AU intensity onset offset" (empty: no AU)
    <root>/AAM_landmarks/<subject>/<sequence>/<frame>_aam.txt           66 rows "x y" (pixels)
    <root>/Sequence_Labels/{AFF,OPR,SEN,VAS}/<subject>/<sequence>.txt   one float per sequence

`load_unbc(root)` maps it onto the column contract (`features.pain_features` where a column exists there) as one
`datasets.Dataset`, one row per labelled frame. `pspi` is the archive's PSPI file; PSPI recomputed from the FACS rows
with `generation.pspi` is cross-checked against it. AU43 (eyes closed) counts as 1 whenever it is coded (the archive
codes presence, not intensity). AUs outside the project's AU table are counted in the report, not kept.

Nothing is dropped silently: every frame left out, every disagreement and every file that is not part of the layout
is listed on the `UNBCReport` attached as `.report` (and logged). With `align=True` each frame (and its neutral
frame) is cropped and aligned to the framing of 3DPain renders from its AAM landmarks (`alignment.align_face`).

`load_unbc` also reads the three HDF5 files the official Pain-in-3D code reads (`unbc_hdf5`): the same columns and
the same choice of neutral frame, from their per-frame labels (no sequences, sequence labels or landmarks there).

`write_unbc_layout` writes a generated 3DPain dataset in this layout (renders placed in 320 x 240 frames), so the
archive's tools can be tested without the archive, which is only available from its authors.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from datasets import Dataset, Features, List, Value
from PIL import Image

from generation.facs import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, PSPI_MAX, ActionUnitError, pspi, validate_action_units

from .alignment import DEFAULT_SIZE, TEMPLATE, align_face, transform_points, warp
from generation.columns import pain_features
from .integrity import MAX_LABEL_FILE_BYTES, read_regular
from .official import image_problem
from .report import ProblemLog
from .unbc_hdf5 import FRAMES_FILE, FrameReader, is_hdf5_layout, read_annotations
from generation.errors import Pain3DError

logger = logging.getLogger(__name__)

IMAGES, FRAME_LABELS, LANDMARKS, SEQUENCE_LABELS = "Images", "Frame_Labels", "AAM_landmarks", "Sequence_Labels"
FRAME_LABEL_KINDS = ("PSPI", "FACS")
SEQUENCE_LABEL_KINDS = ("VAS", "OPR", "AFF", "SEN")  # columns vas, opr, aff, sen
NUM_AAM_LANDMARKS = 66
INNER_MOUTH_CORNERS = (60, 64)  # the two points of the 68-point markup that the 66-point AAM markup lacks
FRAME_NAME = re.compile(r"^(?P<stem>.*?(?P<index>\d+))\.png$", re.IGNORECASE)
SYSTEM_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}
FORMAT_VERSION = 1  # bump when the rows `load_unbc` writes change meaning (the processed-frame cache is keyed on it)

# One line per kind of problem, as the summary prints it.
PROBLEMS: dict[str, str] = {
    "pspi_mismatch": "frames whose PSPI file differs from PSPI recomputed from their FACS rows (the file's PSPI kept)",
    "image_without_labels": "images with no PSPI or no FACS file (left out)",
    "labels_without_image": "label or landmark files with no image",
    "unreadable_file": "files that could not be read or parsed (their frames are left out)",
    "invalid_action_units": "frames whose FACS rows give an intensity FACS does not allow (left out)",
    "other_action_units": "AUs outside the project's AU table (not kept as labels; never part of PSPI)",
    "missing_landmarks": "frames with no AAM landmark file (landmarks_aam None; left out when aligning)",
    "missing_sequence_label": "sequences with no VAS/OPR/AFF/SEN file (that column is None)",
    "missing_neutral": "subjects with no PSPI 0 frame (their rows have no neutral_image)",
    "annotation_without_frame": "HDF5 annotation rows pointing past the last frame (left out, as officially)",
    "unknown_file": "files that are not part of the archive's layout (ignored)",
    "system_file": "operating-system files such as .DS_Store (ignored)",
}


class UNBCLayoutError(Pain3DError, ValueError):
    """The folder cannot be read as the UNBC-McMaster archive at all (not a per-file problem)."""


@dataclass
class UNBCReport(ProblemLog):
    """What `load_unbc` found. `problems[kind]` lists every affected file or frame (see `PROBLEMS`)."""

    KINDS = PROBLEMS
    NOT_COUNTED = ("system_file",)

    root: str
    layout: str = "archive"  # or "hdf5": the official code's three HDF5 files
    images_found: int = 0
    rows: int = 0
    subjects: int = 0
    sequences: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    def summary(self, examples: int = 3) -> str:
        if self.layout == "hdf5":
            first = (f"UNBC-McMaster HDF5 files at {self.root}: {self.images_found} frames -> {self.rows} labelled "
                     f"frames of {self.subjects} subjects")
        else:
            first = (f"UNBC-McMaster archive at {self.root}: {self.images_found} images -> {self.rows} labelled frames "
                     f"of {self.subjects} subjects in {self.sequences} sequences")
        lines = [first]
        return "\n".join(lines + self.problem_lines(examples))


# ---- parsing one file ------------------------------------------------------------------------------------------------


def _numbers(path: str) -> list[list[float]]:
    """Rows of numbers of a whitespace-separated text file (ValueError on anything else; OSError for a FIFO, a
    device or a file over MAX_LABEL_FILE_BYTES, which are never read)."""
    text = read_regular(path, MAX_LABEL_FILE_BYTES).decode("ascii")
    return [[float(token) for token in line.split()] for line in text.splitlines() if line.strip()]


def read_value(path: str) -> float:
    """A file holding one number (a PSPI or sequence label)."""
    rows = _numbers(path)
    if len(rows) != 1 or len(rows[0]) != 1 or not np.isfinite(rows[0][0]):
        raise ValueError(f"expected one number, found {sum(len(r) for r in rows)} values")
    return rows[0][0]


def read_facs(path: str) -> list[tuple[int, float]]:
    """(AU number, intensity) per row of a FACS file ("AU intensity onset offset"); an empty file is no AU."""
    rows = _numbers(path)
    for row in rows:
        if len(row) < 2 or not float(row[0]).is_integer():
            raise ValueError(f"a FACS row must start with an AU number and an intensity, got {row}")
    return [(int(row[0]), row[1]) for row in rows]


def read_landmarks(path: str) -> np.ndarray:
    """(66, 2) AAM landmarks in pixels."""
    rows = _numbers(path)
    points = np.asarray(rows, dtype=np.float64) if rows and all(len(r) == 2 for r in rows) else None
    if points is None or points.shape != (NUM_AAM_LANDMARKS, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected {NUM_AAM_LANDMARKS} rows 'x y', got {len(rows)} rows")
    return points


def facs_action_units(rows: Iterable[tuple[int, float]]) -> tuple[dict[str, float], list[str]]:
    """FACS rows -> ({AU name: intensity} of the project's AUs, names of other AUs). AU43 is 1 when coded."""
    action_units: dict[str, float] = {}
    others: list[str] = []
    for number, intensity in rows:
        name = f"AU{number}"
        if name not in ACTION_UNITS:
            others.append(name)
            continue
        value = 1.0 if ACTION_UNITS[name].binary else float(intensity)
        action_units[name] = max(value, action_units.get(name, 0.0))
    return action_units, others


# ---- scanning the archive --------------------------------------------------------------------------------------------


@dataclass
class _Files:
    images: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (subject, sequence, frame) -> path
    frame_labels: dict[str, dict[tuple[str, str, str], str]] = field(
        default_factory=lambda: {kind: {} for kind in FRAME_LABEL_KINDS}
    )
    landmarks: dict[tuple[str, str, str], str] = field(default_factory=dict)
    sequence_labels: dict[str, dict[tuple[str, str], str]] = field(
        default_factory=lambda: {kind: {} for kind in SEQUENCE_LABEL_KINDS}
    )


def _scan(root: Path, report: UNBCReport) -> _Files:
    """Sort every file under `root` into its place in the layout; report the rest."""
    files = _Files()
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(folder, name)
            parts = Path(os.path.relpath(path, root)).parts
            if name in SYSTEM_FILES or name.startswith("._"):
                report.add("system_file", "/".join(parts))
            elif not _place(files, parts, path):
                report.add("unknown_file", "/".join(parts))
    return files


def _place(files: _Files, parts: tuple[str, ...], path: str) -> bool:
    top, name = parts[0], parts[-1]
    if top == IMAGES and len(parts) == 4 and (match := FRAME_NAME.match(name)):
        files.images[(parts[1], parts[2], match["stem"])] = path
    elif top == FRAME_LABELS and len(parts) == 5 and parts[1] in FRAME_LABEL_KINDS and name.endswith("_facs.txt"):
        files.frame_labels[parts[1]][(parts[2], parts[3], name[: -len("_facs.txt")])] = path
    elif top == LANDMARKS and len(parts) == 4 and name.endswith("_aam.txt"):
        files.landmarks[(parts[1], parts[2], name[: -len("_aam.txt")])] = path
    elif top == SEQUENCE_LABELS and len(parts) == 4 and parts[1] in SEQUENCE_LABEL_KINDS and name.endswith(".txt"):
        files.sequence_labels[parts[1]][(parts[2], name[: -len(".txt")])] = path
    else:
        return False
    return True


def _image_ok(path: str) -> str | None:
    """None when the file is a readable image (a regular file, whole by its end marker, with a header of at most
    PIL's decompression-bomb limit of pixels; no decoding), else the reason."""
    if (problem := image_problem(path)) is not None:  # a FIFO, a device, empty or cut short
        return problem
    try:
        with Image.open(path) as image:
            width, height = image.size  # the header is parsed on open
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            return f"its header declares {width} x {height} pixels, more than a frame can be (a decompression bomb)"
        return None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return str(error) or type(error).__name__


def _frames(files: _Files, root: Path, align: bool, report: UNBCReport, progress: bool) -> list[dict]:
    """One record per usable frame (labels parsed and checked), sorted by subject, sequence and frame."""
    from tqdm.auto import tqdm

    relative = lambda path: os.path.relpath(path, root)  # noqa: E731
    other_aus: dict[str, int] = defaultdict(int)
    records = []
    for key in tqdm(sorted(files.images), desc="UNBC frames", unit="frame", disable=not progress):
        subject, sequence, frame = key
        image = files.images[key]
        label_paths = {kind: files.frame_labels[kind].get(key) for kind in FRAME_LABEL_KINDS}
        missing = [kind for kind, path in label_paths.items() if path is None]
        if missing:
            report.add("image_without_labels", f"{relative(image)} (no {' or '.join(missing)} file)")
            continue
        try:
            stored = read_value(label_paths["PSPI"])
            if not 0 <= stored <= PSPI_MAX:
                raise ValueError(f"PSPI {stored:g} is outside 0-{PSPI_MAX}")
        except (OSError, ValueError) as error:
            report.add("unreadable_file", f"{relative(label_paths['PSPI'])}: {error}")
            continue
        try:
            facs_rows = read_facs(label_paths["FACS"])
            action_units, others = facs_action_units(facs_rows)
        except (OSError, ValueError) as error:
            report.add("unreadable_file", f"{relative(label_paths['FACS'])}: {error}")
            continue
        for name in others:
            other_aus[name] += 1
        try:
            action_units = validate_action_units(action_units)
        except ActionUnitError as error:
            report.add("invalid_action_units", f"{frame}: {error}")
            continue
        recomputed = pspi(action_units)
        if abs(recomputed - stored) > 1e-6:
            report.add("pspi_mismatch", f"{frame}: PSPI file {stored:g}, FACS rows give {recomputed:g}")
        landmarks = None
        if (landmark_path := files.landmarks.get(key)) is None:
            report.add("missing_landmarks", frame)
        else:
            try:
                landmarks = read_landmarks(landmark_path)
            except (OSError, ValueError) as error:
                report.add("unreadable_file", f"{relative(landmark_path)}: {error}")
        if landmarks is None and align:
            continue
        if (problem := _image_ok(image)) is not None:
            report.add("unreadable_file", f"{relative(image)}: {problem}")
            continue
        stat = os.stat(image)
        records.append({
            "image": image, "image_stat": [stat.st_mtime_ns, stat.st_size], "subject": subject,
            "sequence": sequence, "frame": frame, "frame_index": int(FRAME_NAME.match(Path(image).name)["index"]),
            "action_units": action_units, "pspi": stored, "coded": bool(facs_rows),
            "landmarks": None if landmarks is None else landmarks.tolist(),
        })
    for name, count in sorted(other_aus.items(), key=lambda item: int(item[0][2:])):
        report.add("other_action_units", f"{name} in {count} frames")
    for kind in (*FRAME_LABEL_KINDS, "AAM"):
        paths = files.landmarks if kind == "AAM" else files.frame_labels[kind]
        for key in sorted(set(paths) - set(files.images)):
            report.add("labels_without_image", relative(paths[key]))
    return records


def _sequence_labels(files: _Files, records: list[dict], root: Path, report: UNBCReport) -> None:
    """Add vas/opr/aff/sen to each record (None where the sequence has no file)."""
    sequences = sorted({(r["subject"], r["sequence"]) for r in records})
    values: dict[tuple[str, str], dict[str, float | None]] = {s: {} for s in sequences}
    for kind in SEQUENCE_LABEL_KINDS:
        paths = files.sequence_labels[kind]
        for sequence in sequences:
            path = paths.get(sequence)
            value = None
            if path is None:
                report.add("missing_sequence_label", f"{'/'.join(sequence)}: {kind}")
            else:
                try:
                    value = read_value(path)
                except (OSError, ValueError) as error:
                    report.add("unreadable_file", f"{os.path.relpath(path, root)}: {error}")
            values[sequence][kind.lower()] = value
    imaged = {(subject, sequence) for subject, sequence, _ in files.images}
    for kind in SEQUENCE_LABEL_KINDS:
        for key in sorted(set(files.sequence_labels[kind]) - imaged):
            report.add("labels_without_image", os.path.relpath(files.sequence_labels[kind][key], root))
    for record in records:
        record.update(values[(record["subject"], record["sequence"])])


def _hdf5_frames(root: Path, report: UNBCReport) -> list[dict]:
    """One record per annotated frame of the HDF5 layout, in the archive's record shape (`image` the frame's row)."""
    try:
        annotations = read_annotations(root)
    except FileNotFoundError as error:
        raise UNBCLayoutError(str(error)) from None
    report.images_found = annotations.num_frames
    if annotations.dropped:
        report.add("annotation_without_frame",
                   f"{annotations.dropped} rows point past frame {annotations.num_frames - 1}")
    stat = os.stat(root / FRAMES_FILE)
    return [
        {"image": row, "image_stat": [stat.st_mtime_ns, stat.st_size], "subject": subject, "sequence": None,
         "frame": f"unbc_{row}", "frame_index": row, "action_units": action_units, "pspi": float(score),
         "coded": any(value > 0 for value in action_units.values()), "landmarks": None,
         **{kind.lower(): None for kind in SEQUENCE_LABEL_KINDS}}
        for row, (subject, action_units, score) in enumerate(
            zip(annotations.subject_names, annotations.action_units, annotations.pspi))
    ]


def choose_neutrals(records: list[dict]) -> dict[int, int | None]:
    """Row -> row of its neutral frame: a PSPI 0 frame of the same subject, preferably from the same sequence, then
    one with no AU coded at all, then the earliest (sequence, frame). Deterministic; None when the subject has none."""

    def rank(i: int) -> tuple:
        return records[i]["coded"], records[i]["sequence"], records[i]["frame_index"], records[i]["frame"]

    best_of_sequence: dict[tuple[str, str], int] = {}
    best_of_subject: dict[str, int] = {}
    for i, record in enumerate(records):
        if record["pspi"] != 0:
            continue
        for table, key in ((best_of_sequence, (record["subject"], record["sequence"])),
                           (best_of_subject, record["subject"])):
            if key not in table or rank(i) < rank(table[key]):
                table[key] = i
    return {
        i: best_of_sequence.get((record["subject"], record["sequence"]), best_of_subject.get(record["subject"]))
        for i, record in enumerate(records)
    }


# ---- rows ------------------------------------------------------------------------------------------------------------


def unbc_features(extended_aus: Iterable[str] = ()) -> Features:
    """Columns of `load_unbc`: those of the contract (`pain_features`) that the archive has, plus its own."""
    contract = pain_features(extended_aus=tuple(extended_aus))
    shared = ("image", "neutral_image", "sample_id", "identity_id", "action_units", "pspi")
    return Features({
        **{name: contract[name] for name in shared},
        "sequence_id": Value("string"),
        "frame_index": Value("int32"),
        "landmarks_aam": List(List(Value("float32"), length=2), length=NUM_AAM_LANDMARKS),
        **{kind.lower(): Value("float32") for kind in SEQUENCE_LABEL_KINDS},
    })


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # real frames: fast lossless writes beat small files
    return buffer.getvalue()


def prepare_frame(source: str | Image.Image, landmarks, image_size: int | None,
                  align: bool) -> tuple[dict, list | None]:
    """The image column value and landmarks of one frame: the file itself (by path; a frame read from the HDF5
    layout, `source` a PIL image, as PNG bytes), aligned, or resized to image_size x image_size (landmarks scaled
    with it)."""
    if isinstance(source, Image.Image):
        image = source.convert("RGB")
    elif not align and image_size is None:
        return {"path": source, "bytes": None}, landmarks
    else:
        with Image.open(source) as opened:
            image = opened.convert("RGB")
    if align:
        aligned = align_face(image, landmarks, image_size or DEFAULT_SIZE)
        return {"path": None, "bytes": _png(aligned.image)}, aligned.landmarks.tolist()
    if image_size is None:
        return {"path": None, "bytes": _png(image)}, landmarks
    scale = np.array([image_size / image.width, image_size / image.height])
    resized = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    points = None if landmarks is None else (np.asarray(landmarks) * scale).tolist()
    return {"path": None, "bytes": _png(resized)}, points


def _generate_rows(records: list[dict], image_size: int | None, align: bool, action_unit_names: tuple[str, ...],
                   hdf5_folder: str | None = None):
    """Rows of `unbc_features`; a record's `image` is a file path, or a frame row of the HDF5 layout's frames file."""
    reader = FrameReader(hdf5_folder) if hdf5_folder else None
    try:
        yield from _rows(records, image_size, align, action_unit_names, reader or (lambda path: path))
    finally:
        if reader is not None:
            reader.close()


def _rows(records, image_size, align, action_unit_names, source):
    neutrals: dict[str | int, dict] = {}  # each neutral frame is prepared once per process
    for record in records:
        image, landmarks = prepare_frame(source(record["image"]), record["landmarks"], image_size, align)
        neutral = record["neutral"]
        if neutral is not None and neutral["image"] not in neutrals:
            prepared = prepare_frame(source(neutral["image"]), neutral["landmarks"], image_size, align)
            neutrals[neutral["image"]] = prepared[0]
        yield {
            "image": image,
            "neutral_image": None if neutral is None else neutrals[neutral["image"]],
            "sample_id": record["frame"],
            "identity_id": record["subject"],
            "action_units": {name: float(record["action_units"].get(name, 0.0)) for name in action_unit_names},
            "pspi": record["pspi"],
            "sequence_id": record["sequence"],
            "frame_index": record["frame_index"],
            "landmarks_aam": landmarks,
            **{kind.lower(): record[kind.lower()] for kind in SEQUENCE_LABEL_KINDS},
        }


def load_unbc(
    root: str | os.PathLike,
    *,
    image_size: int | None = None,
    align: bool = False,
    num_proc: int | None = None,
    progress: bool = True,
) -> Dataset:
    """The UNBC-McMaster archive at `root` (the folder holding Images/, Frame_Labels/, AAM_landmarks/ and
    Sequence_Labels/) as a `datasets.Dataset`, one row per labelled frame, with `.report` (`UNBCReport`). A folder
    with the official code's HDF5 files instead (`unbc_hdf5`) gives the same columns: `identity_id` its subject name,
    `sample_id` "unbc_<row>", `frame_index` the row, frames as PNG bytes; sequences, their labels and landmarks None.

    Columns (`unbc_features`): `image`, `neutral_image` (a PSPI 0 frame of the same subject, see `choose_neutrals`),
    `action_units` (the pain AUs plus any extended AUs the archive codes), `pspi` (the archive's PSPI file),
    `identity_id` (the subject folder, e.g. "042-ll042"), `sample_id` (the frame, e.g. "ll042t1aaaff001"),
    `sequence_id`, `frame_index` (the frame number), `landmarks_aam` (66 x 2 pixels, None when missing) and the
    sequence labels `vas`, `opr`, `aff`, `sen`.

    Images are referenced by path, undecoded, unless `align` (crop and align each frame to the 3DPain framing from its
    landmarks, `image_size` x `image_size`, default 256; frames without landmarks are left out and reported) or
    `image_size` without `align` (resize to image_size x image_size, as the training transform would). Then frames
    are processed once (`num_proc` processes) into the datasets cache and reused while the archive is unchanged;
    `landmarks_aam` are in the pixels of the returned images.
    """
    root = Path(os.path.abspath(root))
    hdf5 = not (root / IMAGES).is_dir() and is_hdf5_layout(root)
    if not (root / IMAGES).is_dir() and not hdf5:
        raise UNBCLayoutError(
            f"no {IMAGES}/ folder in {root}: point root at the UNBC-McMaster archive folder that holds {IMAGES}/, "
            f"{FRAME_LABELS}/, {LANDMARKS}/ and {SEQUENCE_LABELS}/ (as the archive's authors ship it), or at the "
            f"folder of the official code's HDF5 files ({FRAMES_FILE}, ...)"
        )
    if hdf5 and align:
        raise UNBCLayoutError(f"the HDF5 files in {root} hold no AAM landmarks to align frames with: use align=False")
    if image_size is not None and int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8 pixels (or None to keep the frames), got {image_size}")
    report = UNBCReport(root=str(root), layout="hdf5" if hdf5 else "archive")
    if hdf5:
        records = _hdf5_frames(root, report)
    else:
        files = _scan(root, report)
        report.images_found = len(files.images)
        records = _frames(files, root, align, report, progress)
    if not records:
        logger.warning("%s", report.summary())
        raise UNBCLayoutError(f"no labelled frame in {root}:\n{report.summary()}")
    if not hdf5:
        _sequence_labels(files, records, root, report)
    neutrals = choose_neutrals(records)
    for subject in sorted({r["subject"] for i, r in enumerate(records) if neutrals[i] is None}):
        count = sum(r["subject"] == subject for r in records)
        report.add("missing_neutral", f"{subject} ({count} frames)")
    for i, record in enumerate(records):
        j = neutrals[i]
        record["neutral"] = None if j is None else {"image": records[j]["image"], "landmarks": records[j]["landmarks"]}
    extended = [name for name in EXTENDED_AUS if any(r["action_units"].get(name) for r in records)]
    report.rows = len(records)
    report.subjects = len({r["subject"] for r in records})
    report.sequences = len({(r["subject"], r["sequence"]) for r in records if r["sequence"] is not None})

    options = {"image_size": image_size, "align": align, "action_unit_names": (*PAIN_AUS, *extended),
               "hdf5_folder": str(root) if hdf5 else None}
    # The processed rows depend on the records (paths, file stats, labels), the options and the template.
    token = [FORMAT_VERSION, records, options, TEMPLATE.tolist() if align else None]
    fingerprint = hashlib.sha256(json.dumps(token, sort_keys=True).encode()).hexdigest()[:32]
    dataset = Dataset.from_generator(
        _generate_rows,
        features=unbc_features(extended),
        gen_kwargs={"records": records, **options},
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        fingerprint=f"unbc-{fingerprint}",
    )
    dataset.report = report
    logger.log(logging.WARNING if report.num_problems else logging.INFO, "%s", report.summary())
    return dataset


# ---- writing the layout from generated renders -----------------------------------------------------------------------

FRAME_SIZE = (320, 240)  # the archive's frames are about this size


def _value_text(value: float) -> str:
    return f"{value:15.7e}\n"


def _facs_text(action_units: Mapping[str, float]) -> str:
    rows = []
    for name, value in action_units.items():
        if value:  # the archive codes an AU only where it is present; AU43 as present with intensity 0
            intensity = 0.0 if ACTION_UNITS[name].binary else float(value)
            rows.append(f"{int(name[2:]):15.7e}{intensity:15.7e}{0.0:15.7e}{0.0:15.7e}\n")
    return "".join(rows)


def _open_image(value) -> Image.Image:
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    return Image.open(io.BytesIO(value) if isinstance(value, bytes) else value).convert("RGB")


def write_unbc_layout(
    rows: Iterable[Mapping],
    out: str | os.PathLike,
    *,
    frames_per_sequence: int = 8,
    frame_size: tuple[int, int] = FRAME_SIZE,
    seed: int = 0,
) -> list[dict]:
    """Write 3DPain rows (one view; `image`, `landmarks_2d`, `action_units`, `identity_id`, `expression_index`) in
    the UNBC-McMaster layout under `out`: one subject per identity, its frames (neutral first) cut into sequences of
    `frames_per_sequence`, each render placed in a `frame_size` frame with a seeded head pose (scale, roll, shift)
    per subject plus a little motion per frame. Writes images, PSPI and FACS files, 66 AAM landmarks and sequence
    labels (VAS, OPR, AFF, SEN from the sequence's peak PSPI). Returns one record per frame: `path`, `subject`,
    `sequence`, `frame`, `source` (the row's sample_id) and `matrix` (render -> frame pixels, 2x3)."""
    out = Path(out)
    by_identity: dict[str, list[Mapping]] = defaultdict(list)
    for row in rows:
        by_identity[row["identity_id"]].append(row)
    width, height = frame_size
    written = []
    for number, identity in enumerate(sorted(by_identity), start=1):
        rng = np.random.default_rng([seed, number])
        subject, code = f"{number:03d}-sy{number:03d}", f"sy{number:03d}"
        frames = sorted(by_identity[identity], key=lambda row: (row["expression_index"], row.get("sample_id", "")))
        head = (rng.uniform(0.7, 0.85), rng.uniform(-10, 10), rng.uniform(-20, 20, size=2))  # scale, roll, shift
        for start in range(0, len(frames), frames_per_sequence):
            sequence = f"{code}t{start // frames_per_sequence + 1}aaaff"
            chunk = frames[start : start + frames_per_sequence]
            for folder in ("Images", "Frame_Labels/PSPI", "Frame_Labels/FACS", "AAM_landmarks"):
                (out / folder / subject / sequence).mkdir(parents=True, exist_ok=True)
            for index, row in enumerate(chunk, start=1):
                frame = f"{sequence}{index:03d}"
                render = _open_image(row["image"])
                scale = head[0] * height / render.height
                roll = np.radians(head[1] + rng.normal(0, 1.5))
                centre = np.array([width / 2, height / 2]) + head[2] + rng.normal(0, 2, size=2)
                linear = scale * np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
                matrix = np.c_[linear, centre - linear @ (np.array(render.size) / 2)]
                warp(render, matrix, frame_size, fill=tuple(int(v) for v in rng.integers(40, 90, 3))).save(
                    out / "Images" / subject / sequence / f"{frame}.png"
                )
                points = transform_points(np.asarray(row["landmarks_2d"], np.float64), matrix)
                points = np.delete(points, INNER_MOUTH_CORNERS, axis=0)
                (out / "AAM_landmarks" / subject / sequence / f"{frame}_aam.txt").write_text(
                    "".join(f"{x:.4f} {y:.4f}\n" for x, y in points)
                )
                action_units = {k: float(v) for k, v in row["action_units"].items() if v}
                (out / "Frame_Labels/PSPI" / subject / sequence / f"{frame}_facs.txt").write_text(
                    _value_text(pspi({k: v for k, v in action_units.items() if k in PAIN_AUS}))
                )
                (out / "Frame_Labels/FACS" / subject / sequence / f"{frame}_facs.txt").write_text(
                    _facs_text(action_units)
                )
                written.append({"path": str(out / "Images" / subject / sequence / f"{frame}.png"), "subject": subject,
                                "sequence": sequence, "frame": frame, "source": row.get("sample_id"),
                                "matrix": matrix})
            peak = max(float(row["pspi"]) for row in chunk)
            for kind, top in (("VAS", 10), ("OPR", 5), ("AFF", 15), ("SEN", 15)):
                path = out / SEQUENCE_LABELS / kind / subject / f"{sequence}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(_value_text(round(peak / PSPI_MAX * top)))
    return written


__all__ = [
    "PROBLEMS",
    "UNBCLayoutError",
    "UNBCReport",
    "choose_neutrals",
    "load_unbc",
    "unbc_features",
    "write_unbc_layout",
]
