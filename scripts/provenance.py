"""Where a result came from: the project's commit, the dataset's fingerprint and the package versions.

Every training run records `provenance(dataset)` in its `evaluation.json`; `results_table.py` refuses to put runs of
different datasets or code in one table, and `reproduce_results.py` re-runs only arms whose provenance changed.

The dataset fingerprint is the sha256 of `generation_config.json`'s `config` (the generation parameters) and the
shard hashes that `pain3d generate` recorded in its `pain3d_manifest.json` (the bytes it wrote): two folders with one
fingerprint hold the same rows. Folders pain3d did not write (official-layout exports, Hub ids) have none (None).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

from generation.errors import Pain3DError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The packages a training result depends on (their versions go into every results JSON).
PACKAGES = ("pain3d", "torch", "transformers", "accelerate", "datasets", "numpy", "pillow", "pyarrow", "safetensors",
            "scipy", "matplotlib")


class ProvenanceError(Pain3DError, ValueError):
    """A dataset folder whose fingerprint cannot be read (incomplete or hand-edited)."""


def git_commit(root: str | Path = PROJECT_ROOT) -> dict:
    """`{"commit": sha or None, "dirty": bool or None}` of the project's git checkout (None outside git); dirty:
    tracked files differ from the commit (untracked files do not count)."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def dataset_fingerprint(folder: str | Path) -> str | None:
    """sha256 (hex) of the generation config and the shard hashes of a `pain3d generate` folder; None for a folder
    without `generation_config.json` (not generated here) or a Hub id. Raises `ProvenanceError` for a generated
    folder whose manifest is missing its shards (generation unfinished: rerun it with --resume)."""
    folder = Path(folder)
    config_file, manifest_file = folder / "generation_config.json", folder / "pain3d_manifest.json"
    if not config_file.is_file():
        return None
    if not manifest_file.is_file():
        raise ProvenanceError(f"{folder} has no pain3d_manifest.json: its shards are unknown; regenerate it")
    config = json.loads(config_file.read_text())["config"]
    manifest = json.loads(manifest_file.read_text())
    files = manifest.get("files", {})
    missing = [name for name in manifest.get("planned", []) if name not in files]
    if missing:
        raise ProvenanceError(f"{folder} is unfinished ({len(missing)} planned files missing, e.g. {missing[0]}): "
                              "rerun pain3d generate with --resume")
    shards = {name: entry["sha256"] for name, entry in sorted(files.items()) if name.endswith(".parquet")}
    if not shards:
        raise ProvenanceError(f"{folder}'s manifest lists no parquet shards: regenerate it")
    token = json.dumps({"config": config, "shards": shards}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(token.encode()).hexdigest()


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when absent), and Python's."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(dataset: str | Path | None) -> dict:
    """What a training run records: the commit (and whether the tree was dirty) and the dataset fingerprint."""
    fingerprint = dataset_fingerprint(dataset) if dataset is not None and Path(dataset).is_dir() else None
    return {**git_commit(), "dataset_fingerprint": fingerprint}
