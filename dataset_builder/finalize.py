"""The last steps of a generated folder, which belong to the data side: the preview sheet and the dataset card after
the shards (`finalize_dataset_folder`), and an audit that rewrites the card's "Independent audit" section
(`audit_folder`). Every file written here is recorded in the folder's manifest, so `pain3d verify` checks it and
`--overwrite` may delete it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from generation.config import GenerationConfig
from generation.errors import OutputError
from generation.manifest import read_manifest, record, writer_lock
from generation.writer import CONFIG_FILE, MANIFEST_TOOL, plan_shards

from .audit import AUDIT_FILE, audit_dataset, check_output, write_audit
from .card import AUDIT_PLOTS, write_dataset_card
from .preview import dataset_preview_sheet

PREVIEW_FILE = "preview.png"
CARD_FILES = (  # written after the shards; recorded in the manifest
    "README.md", PREVIEW_FILE, "plots/pspi_histogram.png", "plots/action_units.png", "plots/demographics.png",
)


def _record(folder: Path, names) -> None:
    record(folder, [name for name in names if (folder / name).is_file()], tool=MANIFEST_TOOL)


def finalize_dataset_folder(folder: str | Path) -> Path:
    """`preview.png` from the finished shards, then the card (`README.md`, `plots/`). Every planned shard must exist.
    Returns the card's path."""
    folder = Path(folder)
    generation_record = json.loads((folder / CONFIG_FILE).read_text())
    config = GenerationConfig.from_dict(generation_record["config"])
    missing = [s.relative_path for s in plan_shards(config) if not (folder / s.relative_path).is_file()]
    if missing:
        raise OutputError(f"{len(missing)} shards are missing (e.g. {missing[0]}): rerun with --resume")
    record(folder, planned=CARD_FILES, tool=MANIFEST_TOOL)  # planned first: an interrupted card is still ours
    try:  # each file is written whole or not at all (a full disk leaves no truncated preview that verify would pass)
        dataset_preview_sheet(folder, folder / PREVIEW_FILE)
        card = write_dataset_card(folder, generation_record)
    except OSError as error:
        raise OutputError(
            f"cannot write the card and preview of {folder} ({error.strerror or error}): free some space, then rerun "
            "with --resume (the shards are kept)"
        ) from None
    _record(folder, CARD_FILES)
    return card


def audit_folder(dataset: str | Path, output: str | Path | None = None, **options) -> tuple[dict, Path, Path | None]:
    """Audit `dataset` (see `audit.audit_dataset` for `options`) into `output` (default DATASET/audit.json). When
    the audit sits in a folder pain3d generated, audited into its own audit.json, the card is rewritten with its
    "Independent audit" section. Returns (result, audit file, rewritten card or None)."""
    dataset = Path(dataset)
    output = check_output(Path(output) if output else dataset / AUDIT_FILE)  # before the long part
    own = (dataset / CONFIG_FILE).is_file() and output.resolve() == (dataset / AUDIT_FILE).resolve()
    # auditing into a generated folder writes there (audit.json, the card): as its one writer, for the whole run
    with writer_lock(dataset, "pain3d audit") if own else contextlib.nullcontext():
        result = audit_dataset(dataset, **options)
        write_audit(result, output)
        if not own:
            return result, output, None
        card = write_dataset_card(dataset)
        if read_manifest(dataset) is not None:  # pain3d wrote these too: `verify` checks, `--overwrite` may delete them
            _record(dataset, [AUDIT_FILE, *CARD_FILES, *AUDIT_PLOTS])
    return result, output, card
