"""Checks the training and upload scripts run before they touch disk or start training, and their one-line errors.

- `prepare_output_dir`: an existing non-empty output folder is refused without `--overwrite`; with it, only the files
  a script recorded there (`pain3d_manifest.json`) are deleted, and nothing at all when anything else is there.
- `require_rows`: every split a script needs has rows, checked before training rather than found after it.
- `run_main`: a script's bad input (`UsageError`, an argument error) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import contextlib
import os

from generation.errors import Pain3DError
from generation.manifest import MANIFEST_NAME, ManifestError, move_into, record, remove_written, written_files

EXIT_BAD_INPUT = 2
SPLITS_NEEDED = ("train", "validation", "test")  # train, pick the checkpoint, report


class UsageError(Pain3DError, ValueError):
    """Input the script cannot work with; the message names the problem and the fix."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_dir(output_dir: str | Path, overwrite: bool, *, keep: Sequence[str | Path] = ()) -> None:
    """Raise `UsageError` unless `output_dir` can be used (new, holding no files, or with `overwrite` holding only
    files an earlier run recorded); touches nothing. `keep` are folders the output must not be, lie in or contain."""
    output_dir = Path(output_dir)
    resolved = output_dir.resolve()
    for other in keep:
        other = Path(other).resolve()
        if _inside(resolved, other) or _inside(other, resolved):
            raise UsageError(f"the output folder {output_dir} overlaps the input folder {other}: choose another folder")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"the output folder {output_dir} is a file: choose a folder path")
    if output_dir.is_dir() and any(not p.is_dir() for p in output_dir.rglob("*")):  # empty sub-folders hold nothing
        if not overwrite:
            raise UsageError(
                f"the output folder {output_dir} is not empty: choose a new folder, or pass --overwrite to replace "
                f"what an earlier run wrote there (files recorded in its {MANIFEST_NAME}; nothing else is deleted)"
            )
        try:
            written_files(output_dir)
        except ManifestError as error:
            raise UsageError(str(error)) from None


def prepare_output_dir(
    output_dir: str | Path, overwrite: bool, *, tool: str, owned: Iterable[str] = (), keep: Sequence[str | Path] = ()
) -> Path:
    """Make `output_dir` ready for a fresh run of `tool` (see `check_output_dir`): delete what an earlier run wrote
    and start a manifest. `owned` are sub-folders the run fills wholesale (recorded as planned, so an interrupted
    run can still be replaced)."""
    check_output_dir(output_dir, overwrite, keep=keep)
    output_dir = Path(output_dir)
    try:
        if output_dir.is_dir():
            remove_written(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        record(output_dir, planned=[name.rstrip("/") + "/" for name in owned], tool=tool)
    except ManifestError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write to {output_dir} ({error.strerror or error}); choose a writable folder") from None
    return output_dir


def swap_in(staging: str | Path, output_dir: str | Path, *, tool: str) -> Path:
    """Move the finished folder `staging` to `output_dir`, replacing what an earlier run recorded there (checked with
    `check_output_dir` before `staging` was written); records every file in the manifest."""
    staging, output_dir = Path(staging), Path(output_dir)
    record(staging, [str(p.relative_to(staging)) for p in sorted(staging.rglob("*")) if p.is_file()], tool=tool)
    try:
        if output_dir.is_dir():
            remove_written(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        move_into(staging, output_dir)
    except ManifestError as error:
        raise UsageError(str(error)) from None
    return output_dir


def record_outputs(output_dir: str | Path) -> None:
    """Record every file now in `output_dir` (written by this run: it started empty) in its manifest."""
    output_dir = Path(output_dir)
    files = [str(p.relative_to(output_dir)) for p in sorted(output_dir.rglob("*")) if p.is_file()]
    record(output_dir, [rel for rel in files if rel != MANIFEST_NAME and not rel.endswith(".partial")])


def require_rows(splits: Mapping[str, object], names: Sequence[str], source: str = "the dataset") -> None:
    """Every split in `names` exists and has at least one row (`splits` maps names to datasets or row counts)."""
    size = lambda split: split if isinstance(split, int) else len(split)  # noqa: E731
    empty = [name for name in names if name not in splits or size(splits[name]) == 0]
    if empty:
        sizes = ", ".join(f"{name} {size(split)}" for name, split in splits.items() if name in names)
        raise UsageError(
            f"{source} has no rows in the {', '.join(empty)} split(s) (rows: {sizes}); training needs identity-"
            "disjoint train / validation / test splits with rows: generate more identities (at least 10) or fix "
            "the split CSV"
        )


def check_parquet_rows(source: str | Path, names: Sequence[str]) -> None:
    """For a local folder of parquet shards (`data/<split>-*.parquet`): every split in `names` has rows, read from
    the shard footers before `load_dataset` (which fails on an empty split with a message naming no fix)."""
    import pyarrow.parquet as pq

    data = Path(source) / "data"
    if not data.is_dir():
        return
    rows = {}
    for name in names:
        shards = sorted(data.glob(f"{name}-*.parquet"))
        try:
            rows[name] = sum(pq.read_metadata(shard).num_rows for shard in shards)
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read the {name} shards of {source} ({error}); run `pain3d verify {source}`")
    require_rows(rows, names, str(source))


def run_main(main: Callable[[], object], name: str) -> int:
    """Run a script's `main`; bad input is one line on stderr (no traceback) and exit code 2."""
    try:
        main()
    except UsageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


@contextlib.contextmanager
def usage_errors():
    """Argument and input errors raised as ValueError (HfArgumentParser, dataset checks) become `UsageError`."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(str(error)) from None


TRAINER_FOLDERS = ("checkpoints", "tensorboard")  # what the Trainer writes into --output_dir while it runs


def _main_process() -> bool:
    # only rank 0 writes --output_dir; if it refuses, the launcher stops the other ranks
    return int(os.environ.get("RANK", "0")) == 0


def check_training_output(loop_args, keep: Sequence[str | Path] = ()) -> None:
    """Before loading data: --output_dir can be used (see `check_output_dir`)."""
    if _main_process():
        check_output_dir(loop_args.output_dir, loop_args.overwrite, keep=keep)


def start_training_run(loop_args, tool: str) -> None:
    """Just before training: the main process makes --output_dir ready; the others write nothing there."""
    if _main_process():
        prepare_output_dir(loop_args.output_dir, loop_args.overwrite, tool=tool, owned=TRAINER_FOLDERS)


def finish_training_run(loop_args, evaluation) -> None:
    """After training, on the process that wrote the outputs: record them in the manifest."""
    if evaluation is not None:
        record_outputs(loop_args.output_dir)
