"""What pain3d wrote into a folder, so that `--overwrite` deletes nothing else and corrupt files are found.

`pain3d_manifest.json` in the folder lists every file a pain3d tool wrote there (relative path, size in bytes,
sha256) and the paths it planned to write (a shard not finished yet, a folder it owns, such as a Trainer's
`checkpoints/`). `remove_written` deletes only recorded files whose size and sha256 still match, plus the planned
paths and their `.partial` leftovers, and refuses (deleting nothing) when anything else is there. `check_files`
compares the recorded files with the disk. `replacing` writes a file so that it is never half-written. A leaf
module: it imports nothing from the project.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Iterable, Iterator
from .errors import Pain3DError

MANIFEST_NAME = "pain3d_manifest.json"
LOCK_NAME = ".pain3d.lock"  # present only while a pain3d writer holds the folder (see `writer_lock`)
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"  # how every temporary file ends, so folder checks tell a leftover from a user file


@contextlib.contextmanager
def replacing(path: str | os.PathLike, partial: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving without an error it replaces `path` in one step (`os.replace`),
    on an error it is removed. The default name is unique (`.<name>.<pid>-<random>.partial`: parallel writers never
    share one); `partial` names it instead (a name that a folder check knows as a leftover of `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(partial) if partial is not None else path.with_name(
        f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    )
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_replacing(path: str | os.PathLike, text: str, partial: str | os.PathLike | None = None) -> Path:
    """Write `text` to `path` through `replacing`."""
    with replacing(path, partial) as temporary:
        temporary.write_text(text)
    return Path(path)


class ManifestError(Pain3DError, RuntimeError):
    """A folder cannot be replaced safely (files pain3d did not write, no manifest) or its manifest is unreadable."""


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: str | os.PathLike) -> dict:
    return {"size": os.path.getsize(path), "sha256": sha256_file(path)}


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest ({"tool", "files": {path: {size, sha256}}, "planned": [...]}), or None when it has none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("planned", []), list):
            raise ValueError("no 'files' table")
        for rel, entry in manifest["files"].items():
            if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)):
                raise ValueError(f"the entry of {rel!r} is not {{size: int, sha256: str}}")
        if not all(isinstance(rel, str) for rel in manifest.get("planned", [])):
            raise ValueError("'planned' is not a list of paths")
    except (OSError, ValueError, AttributeError) as error:
        raise ManifestError(
            f"{path} is unreadable ({error}); pain3d cannot tell which files it wrote there: move the files you want "
            "to keep elsewhere and delete the folder yourself, or choose a new folder"
        ) from None
    manifest.setdefault("planned", [])
    return manifest


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on the folder itself, so processes (ranks) that record into one manifest take turns."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def record(
    folder: str | os.PathLike, written: Iterable[str] = (), *, planned: Iterable[str] = (), tool: str | None = None
) -> dict:
    """Add files (paths relative to `folder`, hashed now) and planned paths (a trailing '/' for a whole folder the
    tool owns) to the manifest, creating it if needed. Returns the manifest."""
    folder = Path(folder)
    entries = {rel: file_entry(folder / rel) for rel in written}  # hash outside the lock
    with _locked(folder):
        manifest = read_manifest(folder) or {"format_version": FORMAT_VERSION, "tool": tool, "files": {}, "planned": []}
        manifest["files"].update(entries)
        manifest["planned"] = sorted(set(manifest["planned"]) | set(planned))
        if tool and not manifest.get("tool"):
            manifest["tool"] = tool
        _write(folder, manifest)
    return manifest


def _write(folder: Path, manifest: dict) -> None:
    """Replace the manifest in one step (under `_locked`); its temporary name is one `written_files` knows."""
    write_text_replacing(folder / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                         partial=folder / f"{MANIFEST_NAME}.{os.getpid()}{PARTIAL_SUFFIX}")


def forget(folder: str | os.PathLike, paths: Iterable[str]) -> None:
    """Drop entries (files that are about to be rewritten) from the manifest; they stay planned."""
    folder = Path(folder)
    with _locked(folder):
        manifest = read_manifest(folder)
        if manifest is None:
            return
        for rel in paths:
            if manifest["files"].pop(rel, None) is not None:
                manifest["planned"] = sorted(set(manifest["planned"]) | {rel})
        _write(folder, manifest)


def _files_under(folder: Path) -> list[str]:
    return sorted(
        str(path.relative_to(folder)) for path in folder.rglob("*")
        if (path.is_file() or path.is_symlink()) and path.name != LOCK_NAME
    )


_HELD: dict[str, int] = {}  # this process's writer locks: real folder path -> depth (so a lock can be re-entered)


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike, tool: str) -> Iterator[None]:
    """One writer per folder: hold an exclusive lock on `folder` (created if missing) for a whole run; a second
    writer, in this or another process, is refused with a `ManifestError` that names the first (its pid, tool and
    start). Re-entrant within a process. The lock file is removed when the run ends."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    if folder.exists() and not folder.is_dir():
        raise ManifestError(f"{folder} exists and is not a folder: choose a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ManifestError(f"cannot create {folder} ({error.strerror or error}); choose a writable folder") from None
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 500).decode(errors="replace").strip() or "another pain3d process"
            os.close(fd)
            raise ManifestError(
                f"{folder} is being written by {holder}: one writer at a time; wait for it to finish (or stop it), "
                "then run again, or choose another folder"
            ) from None
        try:  # the file we locked is still the lock (a finishing writer may have just removed it): else try again
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} ({tool}, since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode())
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        path.unlink(missing_ok=True)
        os.close(fd)
        if created and not any(folder.iterdir()):  # refused before writing anything: leave no trace
            folder.rmdir()


def check_files(folder: str | os.PathLike, paths: Iterable[str] | None = None) -> dict[str, str]:
    """Recorded files (all, or `paths`) whose bytes differ from the record: {path: what is wrong}."""
    folder = Path(folder)
    manifest = read_manifest(folder) or {"files": {}}
    problems = {}
    for rel in manifest["files"] if paths is None else paths:
        entry, path = manifest["files"].get(rel), folder / rel
        if entry is None:
            problems[rel] = "not recorded in the manifest"
        elif not path.is_file():
            problems[rel] = "missing"
        elif path.stat().st_size != entry["size"]:
            problems[rel] = f"size {path.stat().st_size} bytes, {entry['size']} when written"
        elif sha256_file(path) != entry["sha256"]:
            problems[rel] = "sha256 differs from the one recorded when it was written (corrupt or changed)"
    return problems


def written_files(folder: str | os.PathLike, within: Iterable[str] | None = None) -> list[str]:
    """Every file under `folder` (or only under its paths `within`: files and folders a tool replaces, leaving the
    rest alone) that pain3d wrote and may delete; raises `ManifestError` (naming the files) when anything else is
    there, or when there are files and no manifest."""
    folder = Path(folder)
    present = [rel for rel in _files_under(folder) if rel != MANIFEST_NAME]
    if within is not None:
        prefixes = tuple(within)
        present = [rel for rel in present if rel in prefixes or rel.startswith(tuple(p + "/" for p in prefixes))]
    manifest = read_manifest(folder)
    if manifest is None:
        if present:
            raise ManifestError(
                f"refusing to replace {folder}: it has no {MANIFEST_NAME}, so its files may be ones pain3d did not "
                f"write ({', '.join(present[:3])}{', ...' if len(present) > 3 else ''}); nothing was deleted: move "
                "what you want to keep and delete the folder yourself, or choose a new folder"
            )
        return []
    planned = set(manifest["planned"])
    owned_folders = tuple(p for p in planned if p.endswith("/"))
    changed = check_files(folder, [rel for rel in present if rel in manifest["files"]])
    foreign = []
    for rel in present:
        base = rel[: -len(PARTIAL_SUFFIX)] if rel.endswith(PARTIAL_SUFFIX) else rel
        ours = rel in manifest["files"] or base in manifest["files"] or base in planned or rel.startswith(owned_folders)
        if not ours:
            foreign.append(rel)
    if foreign or changed:
        listed = [f"{rel} (not written by pain3d)" for rel in foreign]
        listed += [f"{rel} ({why})" for rel, why in changed.items()]
        raise ManifestError(
            f"refusing to replace {folder}: {len(listed)} files there are not pain3d's as it wrote them: "
            f"{'; '.join(listed[:5])}{'; ...' if len(listed) > 5 else ''}. Nothing was deleted: move them elsewhere "
            "or choose a new folder"
        )
    return present


def remove_written(folder: str | os.PathLike, within: Iterable[str] | None = None) -> int:
    """Delete what pain3d wrote in `folder` (see `written_files`; nothing if anything else is there), the folders
    left empty by that, and the manifest. Returns the number of files deleted."""
    folder = Path(folder)
    files = written_files(folder, within)
    for rel in files:
        (folder / rel).unlink()
    for rel in sorted({str(Path(rel).parent) for rel in files}, key=lambda p: -p.count(os.sep)):
        parent = folder / rel
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    return len(files)


def move_into(staging: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Move every entry of the finished folder `staging` into `folder` (an empty sub-folder of the same name is
    replaced; call `remove_written` first for the earlier run's files), then remove `staging`."""
    staging, folder = Path(staging), Path(folder)
    for entry in staging.iterdir():
        target = folder / entry.name
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.replace(entry, target)
    staging.rmdir()
