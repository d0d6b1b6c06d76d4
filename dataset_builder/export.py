"""Write a generated 3DPain dataset in the published 3D-Pain layout, so the official code can train on it.

    <out>/meshes_inpainted/flame_sample_0042_pain_3_textured_view_001_inpainted.png   (the folder the official
    <out>/meshes_inpainted/flame_sample_0042_neutral_textured_view_001_inpainted.png   loader reads)
    <out>/annotations/flame_sample_0042_pain_3_annotations.json     {"AU4": 2, ..., "AU43": 1, "PSPI": 7}
    <out>/splits.csv                                                 annotation_base_name,split (0/1/2)
    <out>/pain3d_views.json                                          view number -> our view name, yaw, pitch

Image bytes are copied as stored (PNG stays PNG, JPEG stays JPEG; nothing is re-encoded unless the format is
neither). Identity `id_00042` becomes `flame_sample_0042`; the mapping is on the returned report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, DatasetDict, Features
from PIL import Image as PILImage

from generation.manifest import MANIFEST_NAME, ManifestError, move_into, record, remove_written, written_files

from generation.columns import SPLITS
from .integrity import check_labels, is_inside, require_verified
from .official import ANNOTATION_DIR_NAMES, SPLIT_IDS, VIEWS_FILE, official_annotation
from generation.errors import Pain3DError

logger = logging.getLogger(__name__)

EXPORT_IMAGES_DIR = "meshes_inpainted"
SPLIT_CSV_NAME = "splits.csv"
_COLUMNS = ("image", "neutral_image", "identity_id", "expression_index", "view", "yaw", "pitch", "action_units", "pspi")
_SPLIT_NUMBER = {name: number for number, name in SPLIT_IDS.items()}
_TRAILING_NUMBER = re.compile(r"(\d+)$")


class ExportError(Pain3DError, ValueError):
    """The export cannot start (target not empty, source not a generated dataset)."""


@dataclass
class OfficialExportReport:
    """What `export_official` wrote. `identity_map` maps our `identity_id` to the official `flame_sample_XXXX`."""

    out: Path
    split_csv: Path
    pain_images: int = 0
    neutral_images: int = 0
    annotations: int = 0
    reencoded_images: int = 0
    identity_map: dict[str, str] = field(default_factory=dict)
    view_names: list[str] = field(default_factory=list)
    split_identities: dict[str, int] = field(default_factory=dict)
    inconsistent_labels: list[str] = field(default_factory=list)

    def summary(self) -> str:
        splits = ", ".join(f"{s} {n}" for s, n in self.split_identities.items())
        text = (
            f"wrote {self.out}: {self.pain_images} pain + {self.neutral_images} neutral images, "
            f"{self.annotations} annotations, {len(self.identity_map)} identities ({splits}); "
            f"split CSV {self.split_csv}"
        )
        if self.reencoded_images:
            text += f"; {self.reencoded_images} images re-encoded as PNG"
        if self.inconsistent_labels:
            text += f"; {len(self.inconsistent_labels)} expressions with different labels across views (first kept)"
        return text


def _source_batches(src, batch_size: int) -> Iterator[tuple[str, Features, pa.Table]]:
    """(split, features, raw arrow batch) over a generated folder's parquet shards or a DatasetDict (no decoding)."""
    if isinstance(src, DatasetDict):
        for split, dataset in src.items():
            if split not in SPLITS:
                raise ExportError(f"split {split!r} is not one of {SPLITS}: the official split CSV has only 0/1/2")
            features = dataset.features
            missing = [c for c in _COLUMNS if c not in features]
            if missing:
                raise ExportError(f"split {split!r} lacks the columns {missing}: export needs pain_features() columns")
            for batch in dataset.select_columns(list(_COLUMNS)).with_format("arrow").iter(batch_size=batch_size):
                yield split, features, batch
        return
    for shard in _shards(Path(src)):
        split = shard.name.split("-", 1)[0]
        if split not in SPLITS:
            raise ExportError(
                f"{shard.name}: shard names must start with one of {SPLITS} (data/<split>-NNNNN-of-MMMMM.parquet)"
            )
        try:
            parquet = pq.ParquetFile(shard, page_checksum_verification=True)
            features = Features.from_arrow_schema(parquet.schema_arrow)
            missing = [c for c in _COLUMNS if c not in features]
            if missing:
                raise ExportError(f"{shard} lacks the columns {missing}: export needs pain_features() columns")
            batches = [pa.Table.from_batches([batch]) for batch in
                       parquet.iter_batches(batch_size=batch_size, columns=list(_COLUMNS))]
        except (OSError, pa.ArrowException) as error:
            raise ExportError(
                f"cannot read the shard {shard} ({error}): it is truncated or corrupt; `pain3d verify` names every "
                "bad shard and `pain3d generate --resume` renders them again"
            ) from None
        for batch in batches:
            yield split, features, batch


def _shards(folder: Path) -> list[Path]:
    shards = sorted((folder / "data").glob("*.parquet"))
    if not shards:
        raise ExportError(
            f"no parquet shards under {folder / 'data'}: pass a folder written by `pain3d generate` "
            f"(data/<split>-NNNNN-of-MMMMM.parquet) or a DatasetDict"
        )
    return shards


def _image_bytes(value: dict | None, folder: Path | None = None) -> bytes | None:
    """The image's bytes: stored ones, else its file. From a dataset folder, only a file inside that folder (a
    relative path is relative to it); anything else is refused, never read."""
    if value is None:
        return None
    if value.get("bytes") is not None:
        return value["bytes"]
    if value.get("path"):
        path = Path(value["path"])
        if folder is not None:
            path = folder / path
            if not is_inside(path, folder):
                raise ExportError(
                    f"a row's image path {value['path']!r} points outside the dataset folder {folder}: refusing to "
                    "read it; a generated dataset stores its image bytes in the shards"
                )
        return path.read_bytes()
    return None


def _extension(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpg"
    return None


def _official_identities(identity_ids: list[str]) -> dict[str, str]:
    """`id_00042` -> `flame_sample_0042` (at least 4 digits) when every id ends in a distinct number, else the sorted
    ids numbered 0000, 0001, ..."""
    numbers = {i: _TRAILING_NUMBER.search(i) for i in identity_ids}
    if all(numbers.values()) and len({int(m[1]) for m in numbers.values()}) == len(identity_ids):
        return {i: f"flame_sample_{int(m[1]):04d}" for i, m in numbers.items()}
    return {i: f"flame_sample_{n:04d}" for n, i in enumerate(sorted(identity_ids))}


def _export_paths(images_dir: str) -> tuple[str, ...]:
    """What an export writes (and `overwrite` replaces) in its target; anything else there is left alone."""
    return (images_dir, *ANNOTATION_DIR_NAMES, SPLIT_CSV_NAME, VIEWS_FILE)


def _check_out(out: Path, overwrite: bool, images_dir: str) -> None:
    """Refuse a target that cannot be replaced safely, before anything is read or written."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"export target {out} is a file: choose a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(
                f"export target {out} is not empty; choose an empty or new folder, or pass overwrite=True "
                f"(CLI: --overwrite) to replace the exported files in it"
            )
        try:  # an image or annotation the user put there would be mixed into the export: refuse it
            written_files(out, _export_paths(images_dir))
        except ManifestError as error:
            raise ExportError(str(error)) from None


def _swap_in(staging: Path, out: Path, images_dir: str) -> None:
    """Replace the previous export in `out` (only the files it recorded) by the finished one in `staging`."""
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        os.replace(staging, out)
        return
    remove_written(out, _export_paths(images_dir))
    move_into(staging, out)


def export_official(
    src: str | os.PathLike | DatasetDict,
    out: str | os.PathLike,
    overwrite: bool = False,
    *,
    images_dir: str = EXPORT_IMAGES_DIR,
    batch_size: int = 256,
) -> OfficialExportReport:
    """Write `src` (a generated dataset folder, or a `DatasetDict` with `pain_features` columns) to `out` in the
    official 3D-Pain layout (see the module docstring). Rows with `expression_index` 0 and every row's
    `neutral_image` give the neutral image of each identity and view (written once); each pain expression gets one
    JSON with its AUs and stored PSPI. Refuses a non-empty `out` unless `overwrite`; then it replaces the image and
    annotation folders, the split CSV and the views file of an earlier export (only files its manifest,
    `pain3d_manifest.json`, records, and none at all if those folders hold anything else) and leaves anything else
    there alone. The export is written beside `out` and swapped in when complete.
    """
    out = Path(out)
    if not isinstance(src, DatasetDict) and Path(src).resolve() == out.resolve():
        raise ExportError(f"export target {out} is the source folder: choose another folder")
    # Identity ids first (a cheap column read) so the file names are known before writing.
    identity_ids: set[str] = set()
    if isinstance(src, DatasetDict):
        for dataset in src.values():
            identity_ids.update(dataset.unique("identity_id"))
    else:
        _shards(Path(src))  # a folder with no shards at all: say so before verifying
        if (Path(src) / MANIFEST_NAME).is_file():  # pain3d generate's folder: a missing, extra or changed shard
            require_verified(src, "export")  # is refused, instead of exporting part of the dataset
        for shard in _shards(Path(src)):  # checks the source before anything is written
            try:
                identity_ids.update(pq.read_table(shard, columns=["identity_id"])["identity_id"].to_pylist())
            except (OSError, pa.ArrowException) as error:
                raise ExportError(
                    f"cannot read the shard {shard} ({error}): it is truncated or corrupt; `pain3d verify` names "
                    "every bad shard and `pain3d generate --resume` renders them again"
                ) from None
    _check_out(out, overwrite, images_dir)
    # The export is written beside the target and swapped in when complete: a source that turns out corrupt
    # half-way leaves the previous export as it was.
    staging = out.parent / f".{out.name}.pain3d-export-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        (staging / images_dir).mkdir(parents=True)
        (staging / ANNOTATION_DIR_NAMES[0]).mkdir()
        report = _write_export(src, staging, identity_ids, images_dir, batch_size)
        record(staging, [str(p.relative_to(staging)) for p in sorted(staging.rglob("*")) if p.is_file()],
               tool="pain3d export-official")
        _swap_in(staging, out, images_dir)
    except OSError as error:
        raise ExportError(f"cannot write the export to {out} ({error}); choose a writable folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.out, report.split_csv = out, out / SPLIT_CSV_NAME
    logger.info(report.summary())
    return report


def _write_export(src, out: Path, identity_ids: set[str], images_dir: str, batch_size: int) -> OfficialExportReport:
    report = OfficialExportReport(out=out, split_csv=out / SPLIT_CSV_NAME)
    report.identity_map = _official_identities(sorted(identity_ids))
    images = out / images_dir
    annotations_dir = out / ANNOTATION_DIR_NAMES[0]
    written_neutrals: set[tuple[str, int]] = set()
    labels: dict[str, dict] = {}
    base_split: dict[str, str] = {}
    identity_split: dict[str, str] = {}
    views: dict[int, dict] = {}
    folder = None if isinstance(src, DatasetDict) else Path(src)

    def write_image(data: bytes, stem: str) -> None:
        ext = _extension(data)
        if ext is None:  # neither PNG nor JPEG: the official loader globs only png/jpg
            buffer = BytesIO()
            PILImage.open(BytesIO(data)).save(buffer, format="PNG")
            data, ext = buffer.getvalue(), "png"
            report.reencoded_images += 1
        (images / f"{stem}.{ext}").write_bytes(data)

    for split, features, batch in _source_batches(src, batch_size):
        view_feature = features["view"]
        view_names = view_feature.names if isinstance(view_feature, ClassLabel) else None
        rows = batch.to_pylist()
        check_labels([row["pspi"] for row in rows], [row["action_units"] for row in rows],
                     [f"{row['identity_id']} expression {row['expression_index']} view {row['view']}" for row in rows],
                     where=f"the {split} split")
        for row in rows:
            identity = report.identity_map[row["identity_id"]]
            identity_split.setdefault(identity, split)
            view = int(row["view"])
            if view not in views:
                name = view_names[view] if view_names else f"view_{view:03d}"
                views[view] = {"index": view, "name": name, "yaw": row["yaw"], "pitch": row["pitch"]}
            suffix = f"textured_view_{view:03d}_inpainted"
            if (identity, view) not in written_neutrals:
                neutral = _image_bytes(row["neutral_image"], folder)
                if neutral is None and row["expression_index"] == 0:
                    neutral = _image_bytes(row["image"], folder)
                if neutral is not None:
                    write_image(neutral, f"{identity}_neutral_{suffix}")
                    written_neutrals.add((identity, view))
                    report.neutral_images += 1
            if row["expression_index"] == 0:
                continue
            base = f"{identity}_pain_{row['expression_index']}"
            label = official_annotation(row["action_units"], row["pspi"])
            if labels.setdefault(base, label) != label:
                report.inconsistent_labels.append(f"{base} view {view}")
            base_split.setdefault(base, split)
            write_image(_image_bytes(row["image"], folder), f"{base}_{suffix}")
            report.pain_images += 1

    for base, label in labels.items():
        (annotations_dir / f"{base}_annotations.json").write_text(json.dumps(label))
    report.annotations = len(labels)
    with report.split_csv.open("w", newline="") as handle:
        handle.write("annotation_base_name,split\n")
        for base in sorted(base_split):
            handle.write(f"{base},{_SPLIT_NUMBER[base_split[base]]}\n")
    (out / VIEWS_FILE).write_text(json.dumps([views[v] for v in sorted(views)], indent=1))
    report.view_names = [views[v]["name"] for v in sorted(views)]
    report.split_identities = {s: sum(1 for v in identity_split.values() if v == s) for s in SPLITS}
    return report
