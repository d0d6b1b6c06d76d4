"""What this project's readers check before they trust data: label ranges on every decoded row, a generated folder
against its manifest before it is exported or evaluated, and that a file is a regular file of bounded size before it
is read (a FIFO, a device or a link to one would hang the reader, a huge file would exhaust memory).

`datasets` does not check parquet page checksums, so a flipped bit in a label page reaches the reader as another
value; the range check turns the out-of-range ones into an error that points at `pain3d verify`.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any, Mapping, Sequence

from generation.errors import Pain3DError
from generation.facs import ACTION_UNITS, PSPI_MAX

MAX_LABEL_FILE_BYTES = 1 << 20  # an annotation, PSPI, FACS or landmark file is a few hundred bytes


class LabelRangeError(Pain3DError, ValueError):
    """A decoded row whose PSPI or an AU intensity is outside its range: the data is corrupt."""


class NotARegularFileError(Pain3DError, OSError):
    """A path that is not a regular file (a FIFO, a device, a folder) or larger than the reader allows."""


class IncompleteDatasetError(Pain3DError, ValueError):
    """A generated folder that `pain3d verify` does not pass: missing, truncated or changed files."""


def _bad(value: Any, top: float) -> bool:
    """Whether `value` (a number, None for absent, or a per-frame list) holds a number outside 0..top or NaN."""
    if value is None:
        return False
    if isinstance(value, (list, tuple)):
        return any(_bad(v, top) for v in value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return True
    return not (math.isfinite(number) and 0.0 <= number <= top)


def label_problem(pspi: Any, action_units: Mapping[str, Any] | None) -> str | None:
    """What is out of range in one row's labels (PSPI 0-PSPI_MAX, each known AU 0-its max intensity), or None."""
    if _bad(pspi, PSPI_MAX):
        return f"PSPI {pspi!r} is outside 0-{PSPI_MAX}"
    for name, value in (action_units or {}).items():
        unit = ACTION_UNITS.get(name)
        if unit is not None and _bad(value, unit.max_intensity):
            return f"{name} {value!r} is outside 0-{unit.max_intensity}"
    return None


def check_labels(pspi: Sequence[Any], action_units: Sequence[Mapping[str, Any] | None],
                 row_names: Sequence[Any] | None = None, where: str = "") -> None:
    """Raise LabelRangeError naming the first row (its `row_names` entry, else its position) whose labels are out of
    range. `pspi` and `action_units` are columns (one entry per row), as a batch holds them."""
    for index, (value, units) in enumerate(zip(pspi, action_units)):
        problem = label_problem(value, units)
        if problem is not None:
            row = row_names[index] if row_names is not None else f"#{index}"
            raise LabelRangeError(
                f"row {row}{' of ' + where if where else ''}: {problem}, so the data is corrupt (a flipped bit or an "
                "edited file); run `pain3d verify DIR` on the dataset folder, and download or generate it again"
            )


def require_verified(folder: str | os.PathLike, action: str) -> None:
    """Refuse (IncompleteDatasetError, one line) a generated folder that `pain3d verify` does not pass."""
    from generation.writer import verify_dataset

    try:
        checked, problems = verify_dataset(folder)
    except Pain3DError as error:
        raise IncompleteDatasetError(f"cannot {action} {folder}: {error}") from None
    if problems:
        path, problem = sorted(problems.items())[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IncompleteDatasetError(
            f"cannot {action} {folder}: {len(problems)} of {checked} files are missing, truncated or corrupt "
            f"({path}: {problem}{more}); `pain3d verify {folder}` lists them and `pain3d generate --resume` with the "
            "same parameters renders them again"
        )


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> int:
    """An O_RDONLY descriptor of `path`, opened without blocking (a FIFO with no writer would block open() forever)
    and checked to be a regular file of at most `max_bytes`; NotARegularFileError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(f"{path} is {_kind(info.st_mode)}, not a regular file: it is not read")
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotARegularFileError(f"{path} is {info.st_size} bytes, more than the {max_bytes} read here")
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int = MAX_LABEL_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (NotARegularFileError, an OSError, otherwise)."""
    fd = open_regular(path, max_bytes)
    try:
        chunks, total = [], 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # it grew while being read
                raise NotARegularFileError(f"{path} is more than the {max_bytes} bytes read here")
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (links resolved) lies inside `folder`."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
