"""Reader for the published 3D-Pain layout (Lin et al., "Pain in 3D", arXiv 2509.16727).

The release (https://huggingface.co/datasets/SoroushMehraban/3D-Pain, loader `data/pain3d_loader.py` of
github.com/TaatiTeam/Pain-in-3D) is a folder of images and JSON annotations:

    <root>/meshes_inpainted/ (or images/)  flame_sample_0042_pain_3_textured_view_001_inpainted.jpg
                                           flame_sample_0042_neutral_textured_view_001_inpainted.jpg
    <root>/annotations/                    flame_sample_0042_pain_3_annotations.json  {"AU4": 2, ..., "PSPI": 7}
    split CSV (anywhere)                   annotation_base_name,split   (0 = train, 1 = validation, 2 = test)

One JSON per pain expression serves all its views; neutral images have no JSON (every AU 0, PSPI 0). This module
maps that onto the column contract of `features.pain_features` so one training script serves both layouts:
every pain image is paired with the neutral image of the same identity and view, PSPI is recomputed with
`generation.pspi`, and columns the release does not have (heatmap, landmarks, demographics, camera angles) are None.

Nothing is silently dropped: malformed or missing annotations, missing neutrals, unrecognised files, PSPI mismatches
and split-CSV problems are counted on an `OfficialLayoutReport` (logged, and attached to the result as `.report`).
Indexing is one `os.scandir` per folder plus a regex per name; images are referenced by path and decoded lazily by
the `datasets` Image feature, never at index time. The index is cached (arrow files keyed on the folders' listings),
so a second load skips the JSON reads and memory-maps the result. Only regular files are read (a FIFO or a link to a
device is reported, never opened for reading), annotations up to MAX_LABEL_FILE_BYTES, view numbers up to
MAX_VIEW_INDEX.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import datasets.config
import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, NamedSplit
from datasets.table import InMemoryTable, MemoryMappedTable, Table

from generation.facs import ACTION_UNITS, EXTENDED_AUS, PAIN_AUS, ActionUnitError, pspi

from generation.columns import SPLITS, pain_features
from .integrity import MAX_LABEL_FILE_BYTES, open_regular, read_regular
from .report import ProblemLog
from generation.errors import Pain3DError

logger = logging.getLogger(__name__)

# Folder names the official code and release use; the first that exists wins, else the root itself.
IMAGE_DIR_NAMES = ("meshes_inpainted", "images")
ANNOTATION_DIR_NAMES = ("annotations",)
# Written by `export_official` beside the images: view index -> our view name and camera angles (optional on read).
VIEWS_FILE = "pain3d_views.json"
SPLIT_IDS = {0: "train", 1: "validation", 2: "test"}
DEFAULT_SPLIT_FRACTIONS = (0.7, 0.2, 0.1)
DEFAULT_SPLIT_SEED = 42
INDEX_CACHE_VERSION = 3  # bump when the index format or its meaning changes
# View numbers above this are not views (a name like `_view_300000000_` would size the view table to 3e8 names).
MAX_VIEW_INDEX = 9999

ROW_FIELDS = (
    "image", "neutral_image", "sample_id", "identity_id", "expression_index", "view", "yaw", "pitch", "action_units",
    "pspi", "base",
)
IMAGE_NAME = re.compile(
    r"^(?P<identity>flame_sample_\d+)_(?:pain_(?P<expression>\d+)|(?P<neutral>neutral))"
    r"(?P<suffix>_[^.]*)?\.(?:png|jpe?g)$",
    re.IGNORECASE,
)
# The official loader strips `_textured_view_`, `_view_`, `_bg_`, `_render_` suffixes; the number after is the view.
VIEW_NUMBER = re.compile(r"_(?:view|bg|render)_(\d+)", re.IGNORECASE)
ANNOTATION_NAME = re.compile(r"^(?P<base>(?P<identity>flame_sample_\d+)_pain_(?P<expression>\d+))_annotations\.json$")

# One line per kind of problem, as the summary prints it.
PROBLEMS: dict[str, str] = {
    "malformed_annotation": "annotation JSON files that could not be parsed (their images are left out)",
    "invalid_action_units": "annotations with an AU intensity FACS does not allow, or not a number (their images are "
    "left out)",
    "no_action_units": "annotations with no recognised AU key, so no label at all (their images are left out)",
    "unreadable_image": "images that are empty, truncated or neither PNG nor JPEG (left out)",
    "missing_action_units": "annotations missing some pain AUs (counted as 0)",
    "unknown_annotation_key": "annotation keys that are neither a known AU nor PSPI (ignored)",
    "pspi_mismatch": "annotations whose stored PSPI differs from PSPI recomputed from their AUs (recomputed kept)",
    "unmatched_image": "pain images with no annotation JSON (left out)",
    "orphan_annotation": "annotation JSON files with no image",
    "unrecognised_file": "files in the image folder whose name is not flame_sample_XXXX_{pain_Y,neutral}_... (ignored)",
    "view_out_of_range": f"images whose view number is above {MAX_VIEW_INDEX} (left out)",
    "missing_neutral": "pain images with no neutral image of the same identity and view (neutral_image is None)",
    "duplicate_neutral": "extra neutral images for an identity and view (the first by name is used)",
    "bad_split_row": "split CSV rows with a split other than 0/1/2 or a conflicting repeat (ignored)",
    "split_csv_unknown_name": "split CSV names with no annotation in the folder",
    "not_in_split_csv": "images whose annotation base name is not in the split CSV (left out of every split)",
    "identity_in_several_splits": "identities whose expressions the split CSV puts in more than one split (leak)",
}


class OfficialLayoutError(Pain3DError, ValueError):
    """The folder or split CSV cannot be read as the 3D-Pain layout at all (not a per-file problem)."""


@dataclass
class OfficialLayoutReport(ProblemLog):
    """What `load_official_layout` found. `problems[kind]` lists every affected file or name (see `PROBLEMS`)."""

    KINDS = PROBLEMS

    root: str
    images_dir: str = ""
    annotations_dir: str = ""
    images_found: int = 0
    annotations_found: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def summary(self, examples: int = 3) -> str:
        rows = ", ".join(f"{split} {n}" for split, n in self.rows.items())
        lines = [
            f"3D-Pain layout at {self.root}: {self.images_found} images, {self.annotations_found} annotations -> "
            f"rows: {rows or 'none'}"
        ]
        return "\n".join(lines + self.problem_lines(examples))


@dataclass(frozen=True)
class _Annotation:
    action_units: dict[str, float]
    pspi: float


def _find_dir(root: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return root


def _scan(folder: Path) -> list[str]:
    # Names only: a sub-folder cannot match the image or annotation patterns, so no per-entry stat is needed.
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries)


def _read_json(path: str) -> object:
    # Raw os-level read + json.loads(bytes): much cheaper than open() in text mode for thousands of tiny files.
    # Only a regular file of at most MAX_LABEL_FILE_BYTES: a FIFO or a link to /dev/zero would hang the read.
    return json.loads(read_regular(path, MAX_LABEL_FILE_BYTES))


def _not_a_number(value: object) -> bool:
    """Whether a JSON value cannot be an intensity: not a number, a bool, or an integer beyond float's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except OverflowError:  # a 400-digit integer
        return True
    return False


@functools.lru_cache(maxsize=65536)
def _check_labels(items: tuple[tuple[str, object], ...]) -> tuple[_Annotation | None, tuple[tuple[str, str], ...]]:
    """Validate one annotation's (key, value) pairs: (annotation or None, ((problem kind, message), ...)).

    Memoised: many expressions share an AU configuration, and `generation.pspi` validates on every call.
    """
    problems: list[tuple[str, str]] = []
    values = dict(items)
    stored_pspi = values.pop("PSPI", None)
    action_units: dict[str, object] = {}
    for key, value in values.items():
        name = str(key).upper()
        if name in ACTION_UNITS:
            action_units[name] = value
        else:
            problems.append(("unknown_annotation_key", key))
    if not action_units:  # not zero pain: a file in some other format, whose labels would all read as 0
        problems.append(("no_action_units", f"keys {sorted(map(str, values))}, none of them {', '.join(PAIN_AUS)}"))
        return None, tuple(problems)
    missing = [name for name in PAIN_AUS if name not in action_units]
    if missing:
        problems.append(("missing_action_units", ", ".join(missing)))
    try:
        recomputed = pspi(action_units)
        checked = {name: float(v) for name, v in action_units.items()}
    except ActionUnitError as error:
        problems.append(("invalid_action_units", str(error)))
        return None, tuple(problems)
    for name in PAIN_AUS:
        checked.setdefault(name, 0.0)
    if stored_pspi is not None:
        try:
            stored = float(stored_pspi)
        except (TypeError, ValueError, OverflowError):
            stored = float("nan")
        if not abs(stored - recomputed) <= 1e-6:
            problems.append(("pspi_mismatch", f"PSPI {stored_pspi} in file, {recomputed:g} from its AUs"))
    return _Annotation(checked, recomputed), tuple(problems)


def _parse_annotation(base: str, raw: object, report: OfficialLayoutReport) -> _Annotation | None:
    """Turn one JSON object into validated AUs and recomputed PSPI; None (and a report entry) when unusable."""
    if not isinstance(raw, dict):
        report.add("malformed_annotation", f"{base}: expected a JSON object, got {type(raw).__name__}")
        return None
    for nested in ("AUs", "action_units"):  # tolerate {"AUs": {...}, "PSPI": x}
        if isinstance(raw.get(nested), dict):
            raw = {**{k: v for k, v in raw.items() if k != nested}, **raw[nested]}
    # A string or true/false is another writer's convention, not an intensity. Checked here, not in the memoised
    # check: true == 1 as a cache key.
    not_numbers = [f"{key}={str(value)[:40]}" for key, value in raw.items() if str(key).upper() in ACTION_UNITS
                   and _not_a_number(value)]
    if not_numbers:
        report.add("invalid_action_units", f"{base}: intensities must be JSON numbers, got {', '.join(not_numbers)}")
        return None
    try:
        annotation, problems = _check_labels(tuple(raw.items()))
    except TypeError:  # unhashable values (lists, objects) cannot be intensities
        report.add("invalid_action_units", f"{base}: values must be numbers, got {raw}")
        return None
    for kind, message in problems:
        report.add(kind, f"{base}: {message}")
    return annotation


def _read_annotations(
    annotations_dir: Path, names: Iterable[str], report: OfficialLayoutReport
) -> dict[str, _Annotation | None]:
    """base name -> annotation (None when malformed). Names that are not `*_annotations.json` are ignored."""
    annotations: dict[str, _Annotation | None] = {}
    prefix = os.path.join(str(annotations_dir), "")
    for name in names:
        match = ANNOTATION_NAME.match(name)
        if match is None:
            continue
        base = match["base"]
        try:
            raw = _read_json(prefix + name)
        except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            report.add("malformed_annotation", f"{name}: {error}")
            annotations[base] = None
            continue
        annotations[base] = _parse_annotation(base, raw, report)
    report.annotations_found = len(annotations)
    return annotations


def _read_views(root: Path, images_dir: Path, view_names: Sequence[str] | None, indices: Iterable[int]):
    """(names, yaw, pitch) per view index. Explicit `view_names` win, then the export's views file, then view_NNN."""
    indices = sorted(set(indices)) or [0]
    count = max(indices) + 1
    yaw: list[float | None] = [None] * count
    pitch: list[float | None] = [None] * count
    if view_names is not None:
        names = list(view_names)
        if len(names) < count:
            raise OfficialLayoutError(
                f"view_names has {len(names)} names but the images use view numbers up to {count - 1}: "
                f"give one name per view number (view_000 -> view_names[0], ...)"
            )
        return names, yaw, pitch
    for folder in (images_dir, root):
        path = folder / VIEWS_FILE
        if path.is_file():
            try:
                views = json.loads(read_regular(path, MAX_LABEL_FILE_BYTES))
                indices_in_file = [int(view["index"]) for view in views]
                if any(not 0 <= i <= MAX_VIEW_INDEX for i in indices_in_file):
                    raise ValueError(f"a view index is outside 0-{MAX_VIEW_INDEX}")
            except (OSError, ValueError, KeyError, TypeError, OverflowError) as error:
                raise OfficialLayoutError(
                    f"{path} is unreadable ({type(error).__name__}: {error}); it should be a JSON list of "
                    '{"index", "name", "yaw", "pitch"} objects as `pain3d export-official` writes it: export again, '
                    "or delete it (views are then named view_000, ...)"
                ) from None
            names = [f"view_{i:03d}" for i in range(count)]
            for view, i in zip(views, indices_in_file):
                if i >= len(names):
                    names.extend(f"view_{j:03d}" for j in range(len(names), i + 1))
                    yaw.extend([None] * (i + 1 - len(yaw)))
                    pitch.extend([None] * (i + 1 - len(pitch)))
                names[i] = str(view["name"])
                yaw[i], pitch[i] = view.get("yaw"), view.get("pitch")
            return names, yaw, pitch
    return [f"view_{i:03d}" for i in range(count)], yaw, pitch


def read_split_csv(path: str | os.PathLike, report: OfficialLayoutReport | None = None) -> dict[str, str]:
    """The official split CSV (`annotation_base_name,split`, 0/1/2) as base name -> split name.

    A missing file or header raises `OfficialLayoutError`; bad rows go to `report` ("bad_split_row").
    """
    path = Path(path)
    if not path.is_file():
        raise OfficialLayoutError(f"split CSV not found: {path} (pass split_csv=None for an automatic 70/20/10 split)")
    report = report if report is not None else OfficialLayoutReport(root=str(path))
    splits: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise OfficialLayoutError(
            f"split CSV {path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8 "
            "(annotation_base_name,split per line)"
        ) from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        if "annotation_base_name" not in header or "split" not in header:
            raise OfficialLayoutError(
                f"split CSV {path} must have the header 'annotation_base_name,split' (split 0 = train, "
                f"1 = validation, 2 = test); found {header or 'no header'}"
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            base = (row.get("annotation_base_name") or "").strip()
            value = (row.get("split") or "").strip()
            split = SPLIT_IDS.get(int(value)) if value.lstrip("-").isdigit() else None
            if not base or split is None:
                report.add("bad_split_row", f"line {line}: {base or '<empty name>'},{value} (split must be 0, 1 or 2)")
            elif splits.setdefault(base, split) != split:
                report.add("bad_split_row", f"line {line}: {base} is listed again with another split ({value})")
    return splits


def identity_splits(
    identities: Iterable[str],
    fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = DEFAULT_SPLIT_SEED,
) -> dict[str, str]:
    """Deterministic identity-disjoint train/validation/test assignment (70/20/10 by default).

    The sorted identities are permuted with `numpy.random.default_rng(seed)`; the first round(0.7 n) are train,
    the next round(0.2 n) validation, the rest test, except that with 3 or more identities no split with a
    non-zero fraction is left empty (an empty split cannot be loaded). Same identities and seed -> same split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    ordered = sorted(set(identities))
    order = np.random.default_rng(seed).permutation(len(ordered))
    counts = [int(round(fractions[0] * len(ordered))), int(round(fractions[1] * len(ordered)))]
    counts.append(len(ordered) - sum(counts))
    if len(ordered) >= 3:
        for i in range(3):
            while fractions[i] > 0 and counts[i] < 1:
                counts[i] += 1
                counts[int(np.argmax(counts))] -= 1
    n_train, n_val = counts[0], counts[1]
    names = ["train"] * n_train + ["validation"] * n_val + ["test"] * (len(ordered) - n_train - n_val)
    return {ordered[i]: names[rank] for rank, i in enumerate(order)}


def _image_column(paths: Sequence[str | None]) -> pa.Array:
    return pa.StructArray.from_arrays(
        [pa.nulls(len(paths), pa.binary()), pa.array(paths, pa.string())],
        names=["bytes", "path"],
        mask=pa.array([p is None for p in paths], pa.bool_()),
    )


def _split_table(columns: dict[str, list], rows: list[int], features: Features) -> pa.Table:
    """Arrow table straight from the index columns (no per-row feature encoding, no image reads)."""
    take = lambda name: [columns[name][i] for i in rows]  # noqa: E731
    n = len(rows)
    schema = features.arrow_schema
    arrays = {
        "image": _image_column(take("image")),
        "neutral_image": _image_column(take("neutral_image")),
        "heatmap": _image_column([None] * n),
        "sample_id": pa.array(take("sample_id"), pa.string()),
        "identity_id": pa.array(take("identity_id"), pa.string()),
        "expression_index": pa.array(take("expression_index"), pa.int32()),
        "view": pa.array(take("view"), pa.int64()),
        "yaw": pa.array(take("yaw"), pa.float32()),
        "pitch": pa.array(take("pitch"), pa.float32()),
        "action_units": pa.array(take("action_units"), schema.field("action_units").type),
        "pspi": pa.array(take("pspi"), pa.float32()),
        "age": pa.nulls(n, pa.int32()),
        "age_group": pa.nulls(n, pa.int64()),
        "gender": pa.nulls(n, pa.int64()),
        "ethnicity": pa.nulls(n, pa.int64()),
        "landmarks_2d": pa.nulls(n, schema.field("landmarks_2d").type),
    }
    return pa.Table.from_pydict(arrays, schema=schema)


def _classify_images(image_names: Sequence[str], report: OfficialLayoutReport):
    """One pass over the image folder's names: pain images as (name, identity, expression, view), neutral images
    keyed by (identity, view). Other names are reported (JSON files and the views file are expected there)."""
    pain: list[tuple[str, str, int, int]] = []
    neutrals: dict[tuple[str, int], str] = {}
    for name in image_names:
        match = IMAGE_NAME.match(name)
        if match is None:
            if not name.endswith(".json") and name != VIEWS_FILE:
                report.add("unrecognised_file", name)
            continue
        report.images_found += 1
        view_match = VIEW_NUMBER.search(match["suffix"] or "")
        view = int(view_match[1]) if view_match else 0
        if view > MAX_VIEW_INDEX:
            report.add("view_out_of_range", name)
            continue
        identity = match["identity"]
        if match["neutral"]:
            if neutrals.setdefault((identity, view), name) != name:
                report.add("duplicate_neutral", name)
        else:
            pain.append((name, identity, int(match["expression"]), view))
    return pain, neutrals


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_problem(path: str) -> str | None:
    """What makes an image file unusable, from its first bytes and its last kilobyte (no pixel decoding): empty,
    neither PNG nor JPEG, or cut short (a PNG without its IEND chunk, a JPEG without its end-of-image marker).
    None when it looks whole."""
    try:
        fd = open_regular(path)  # a FIFO or a device is never opened for reading (it would hang)
        with open(fd, "rb") as handle:
            head = handle.read(8)
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 1024))
            tail = handle.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return "empty file"
    if head.startswith(_PNG_SIGNATURE):
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk at its end)"
    if head.startswith(b"\xff\xd8"):
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    return "neither PNG nor JPEG"


def _drop_unreadable(pain, neutrals, folder: Path, report: OfficialLayoutReport):
    """Pain and neutral images without the unreadable ones (each reported), so training never meets them."""
    prefix = os.path.join(str(folder), "")

    def usable(name: str) -> bool:
        problem = image_problem(prefix + name)
        if problem:
            report.add("unreadable_image", f"{name}: {problem}")
        return problem is None

    return [item for item in pain if usable(item[0])], {key: name for key, name in neutrals.items() if usable(name)}


def _pair_rows(pain, neutrals, annotations, folder: Path, cameras, zero_aus, include_neutral_rows, report):
    """Row tuples (ROW_FIELDS order), sorted by (identity, expression, view, sample): each labelled pain image with
    the neutral of its identity and view, then (optionally) one row per neutral image."""
    prefix = os.path.join(str(folder), "")
    yaws, pitches = cameras
    rows: list[tuple] = []
    used_bases: set[str] = set()
    for name, identity, expression, view in pain:
        base = f"{identity}_pain_{expression}"
        if base not in annotations:
            report.add("unmatched_image", name)
            continue
        used_bases.add(base)
        annotation = annotations[base]
        if annotation is None:
            continue  # already reported as malformed or invalid
        neutral_name = neutrals.get((identity, view))
        if neutral_name is None:
            report.add("missing_neutral", name)
        rows.append((
            prefix + name, prefix + neutral_name if neutral_name else None, name.rsplit(".", 1)[0], identity,
            expression, view, yaws[view], pitches[view], {**zero_aus, **annotation.action_units}, annotation.pspi, base,
        ))
    for base in sorted(set(annotations) - used_bases):
        report.add("orphan_annotation", f"{base}_annotations.json")
    if include_neutral_rows:
        for (identity, view), name in sorted(neutrals.items()):
            rows.append((prefix + name, prefix + name, name.rsplit(".", 1)[0], identity, 0, view, yaws[view],
                         pitches[view], zero_aus, 0.0, None))
    rows.sort(key=lambda row: (row[3], row[4], row[5], row[2]))
    return rows


def _index(
    root: Path,
    images_dir: Path,
    annotations_dir: Path,
    split_csv: str | os.PathLike | None,
    view_names: Sequence[str] | None,
    include_neutral_rows: bool,
    split_fractions: Sequence[float],
    seed: int,
) -> tuple[dict[str, pa.Table], OfficialLayoutReport]:
    """Scan, read the JSONs, pair, split: one arrow table per split, and the report."""
    report = OfficialLayoutReport(root=str(root), images_dir=str(images_dir), annotations_dir=str(annotations_dir))
    image_names = _scan(images_dir)
    annotation_names = image_names if annotations_dir == images_dir else _scan(annotations_dir)
    annotations = _read_annotations(annotations_dir, annotation_names, report)
    pain, neutrals = _classify_images(image_names, report)
    pain, neutrals = _drop_unreadable(pain, neutrals, images_dir, report)
    if report.images_found == 0:
        raise OfficialLayoutError(
            f"no 3D-Pain images (flame_sample_XXXX_pain_Y_...png/jpg or flame_sample_XXXX_neutral_...) in "
            f"{images_dir}; point root at the folder that holds meshes_inpainted/ (or images/) and annotations/"
        )

    names, yaws, pitches = _read_views(root, images_dir, view_names, [v for *_, v in pain] + [v for _, v in neutrals])
    extended = sorted(
        {au for a in annotations.values() if a for au in a.action_units if au in EXTENDED_AUS},
        key=EXTENDED_AUS.index,
    )
    features = pain_features(names, extended)
    zero_aus = {name: 0.0 for name in (*PAIN_AUS, *extended)}
    rows = _pair_rows(pain, neutrals, annotations, images_dir, (yaws, pitches), zero_aus, include_neutral_rows, report)
    columns = dict(zip(ROW_FIELDS, map(list, zip(*rows)))) if rows else {name: [] for name in ROW_FIELDS}
    bases = columns.pop("base")

    identities = columns["identity_id"]
    if split_csv is not None:
        row_splits = _splits_from_csv(split_csv, identities, bases, set(annotations), report)
    else:
        by_identity = identity_splits(identities, split_fractions, seed)
        row_splits = [by_identity[identity] for identity in identities]
    tables = {}
    for split in SPLITS:
        selected = [i for i, row_split in enumerate(row_splits) if row_split == split]
        tables[split] = _split_table(columns, selected, features)
        report.rows[split] = len(selected)
    return tables, report


def _stat_token(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_size, stat.st_ino]


def _listing_token(folder: Path) -> str | None:
    """Hash of every entry's name, size, mtime_ns and inode in `folder`: an annotation or image edited in place
    changes it (the folder's own mtime changes only when names are added, removed or renamed)."""
    digest = hashlib.sha256()
    try:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda entry: entry.name):
                try:
                    info = entry.stat()
                    digest.update(f"{entry.name}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n".encode())
                except OSError:  # a dangling link: its name alone
                    digest.update(f"{entry.name}\0-\n".encode())
    except OSError:
        return None
    return digest.hexdigest()


def _cache_key(root: Path, images_dir: Path, annotations_dir: Path, split_csv, options: dict) -> str:
    """Hash of everything the index depends on: each file's name, size and mtime_ns in the image and annotation
    folders (so an edit in place is noticed), the split CSV and views file, and the options."""
    split_path = Path(split_csv).resolve() if split_csv is not None else None
    parts = {
        "version": INDEX_CACHE_VERSION,
        "root": str(root.resolve()),
        "folders": [_stat_token(p) for p in (root, images_dir, annotations_dir)],
        "files": [_listing_token(p) for p in dict.fromkeys((images_dir, annotations_dir))],
        "views_file": [_stat_token(images_dir / VIEWS_FILE), _stat_token(root / VIEWS_FILE)],
        "split_csv": [str(split_path), _stat_token(split_path) if split_path else None],
        "options": options,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _dataset(table: Table, split: str, fingerprint: str) -> Dataset:
    # Features come from the table's schema metadata; an explicit fingerprint spares datasets from hashing the
    # whole table (most of the load time otherwise).
    return Dataset(table, split=NamedSplit(split), fingerprint=fingerprint)


def _load_cached(folder: Path) -> DatasetDict | None:
    try:
        report = OfficialLayoutReport(**json.loads((folder / "report.json").read_text()))
        result = DatasetDict(
            {
                split: _dataset(
                    MemoryMappedTable.from_file(str(folder / f"{split}.arrow")), split, f"{folder.name}-{split}"
                )
                for split in SPLITS
            }
        )
    except (OSError, ValueError, TypeError, pa.ArrowException) as error:
        logger.info("ignoring unreadable 3D-Pain index cache %s (%s)", folder, error)
        return None
    result.report = report
    return result


def _write_cache(folder: Path, tables: dict[str, pa.Table], report: OfficialLayoutReport) -> bool:
    """Write the index atomically (temporary folder, then rename); False (and a log line) if it cannot be written."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for split, table in tables.items():
            with pa.OSFile(str(tmp / f"{split}.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        (tmp / "report.json").write_text(json.dumps(asdict(report)))
        os.replace(tmp, folder)
        return True
    except OSError as error:
        logger.info("could not write the 3D-Pain index cache at %s (%s); continuing without it", folder, error)
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def load_official_layout(
    root: str | os.PathLike,
    split_csv: str | os.PathLike | None = None,
    *,
    view_names: Sequence[str] | None = None,
    include_neutral_rows: bool = True,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = DEFAULT_SPLIT_SEED,
    use_cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> DatasetDict:
    """Read a folder in the published 3D-Pain layout as a `DatasetDict` with `train` / `validation` / `test`.

    Columns follow `pain_features` (see the module docstring for the mapping). `identity_id` is the official
    `flame_sample_XXXX`, `sample_id` the image file stem, `expression_index` Y of `pain_Y` (0 for neutral),
    `view` the number after `_view_` (names from `view_names`, else the export's `pain3d_views.json`, else
    `view_000`, ...), `action_units` and `pspi` (recomputed with `generation.pspi`) from the JSON.
    `include_neutral_rows` adds one row per neutral image (AUs 0, PSPI 0), as the official loader does.

    `split_csv` assigns splits by annotation base name (neutral rows follow their identity); a relative path that
    does not exist from the working directory is read relative to `root`; without it the split
    is identity-disjoint 70/20/10 (`identity_splits`, `seed`). The returned dict carries `.report`
    (`OfficialLayoutReport`); its summary is logged, as a warning when there are problems.

    The index (paths and labels, not images) is cached under `cache_dir` (default: the datasets cache,
    `pain3d_official_index/`) and reused while the folders' listings, the split CSV and the options are unchanged,
    so later loads skip reading the JSON files. The key covers every file's size and mtime_ns, so a JSON edited in
    place is read again; an edit that keeps both (a tool that restores the mtime) is not noticed: pass
    `use_cache=False` after doing that.
    """
    root = Path(os.path.abspath(root))  # the index stores absolute image paths
    if not root.is_dir():
        raise OfficialLayoutError(f"3D-Pain folder not found: {root}")
    if split_csv is not None and not Path(split_csv).is_absolute() and not Path(split_csv).exists():
        split_csv = root / split_csv  # `load_official_layout("Pain-in-3D/", split_csv="splits.csv")`
    images_dir = _find_dir(root, IMAGE_DIR_NAMES)
    annotations_dir = _find_dir(root, ANNOTATION_DIR_NAMES)
    options = {
        "view_names": list(view_names) if view_names is not None else None,
        "include_neutral_rows": include_neutral_rows,
        "split_fractions": list(split_fractions) if split_csv is None else None,
        "seed": seed if split_csv is None else None,
    }
    key = _cache_key(root, images_dir, annotations_dir, split_csv, options)
    cache_folder = Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "pain3d_official_index") / key

    result = _load_cached(cache_folder) if use_cache and cache_folder.is_dir() else None
    if result is None:
        tables, report = _index(
            root, images_dir, annotations_dir, split_csv, view_names, include_neutral_rows, split_fractions, seed
        )
        if use_cache and _write_cache(cache_folder, tables, report):
            result = _load_cached(cache_folder)
        if result is None:
            result = DatasetDict(
                {split: _dataset(InMemoryTable(table), split, f"{key}-{split}") for split, table in tables.items()}
            )
            result.report = report
    report = result.report
    logger.log(logging.WARNING if report.num_problems else logging.INFO, "%s", report.summary())
    return result


def _splits_from_csv(
    split_csv: str | os.PathLike,
    identities: Sequence[str],
    bases: Sequence[str | None],
    annotation_bases: set[str],
    report: OfficialLayoutReport,
) -> list[str | None]:
    """Split per row from the CSV: pain rows by base name, neutral rows by their identity's (most common) split."""
    by_base = read_split_csv(split_csv, report)
    for base in sorted(set(by_base) - annotation_bases):
        report.add("split_csv_unknown_name", base)
    identity_votes: dict[str, Counter] = defaultdict(Counter)
    for base, split in by_base.items():
        identity_votes[base.split("_pain_")[0]][split] += 1
    for identity, votes in sorted(identity_votes.items()):
        if len(votes) > 1:
            report.add("identity_in_several_splits", f"{identity}: {dict(votes)}")
    rank = {split: i for i, split in enumerate(SPLITS)}
    identity_split = {
        identity: max(votes, key=lambda s: (votes[s], -rank[s])) for identity, votes in identity_votes.items()
    }
    row_splits: list[str | None] = []
    for identity, base in zip(identities, bases):
        split = by_base.get(base) if base is not None else identity_split.get(identity)
        if split is None:
            report.add("not_in_split_csv", base or f"{identity} (neutral)")
        row_splits.append(split)
    return row_splits


def official_annotation(action_units: Mapping[str, float], stored_pspi: float | None = None) -> dict[str, float]:
    """The JSON object of one pain expression in the official layout: AU4 ... AU43 and PSPI (plus any extended AUs
    that are set). Integral values are written as ints, as in the release."""
    values = {name: float(action_units.get(name) or 0.0) for name in PAIN_AUS}
    values.update({name: float(v) for name, v in action_units.items() if name in EXTENDED_AUS and v is not None})
    values["PSPI"] = float(stored_pspi) if stored_pspi is not None else pspi(values)
    return {name: int(v) if float(v).is_integer() else v for name, v in values.items()}
