"""Hub-ready dataset folders and uploading them.

A Hub dataset repository here is a folder that `datasets.load_dataset(folder)` reads as is:

    <folder>/data/<split>-NNNNN-of-MMMMM.parquet   image bytes embedded, Features in the schema metadata
    <folder>/README.md                             card with YAML `configs` (data_files per split) + dataset_info
    <folder>/plots/*.png, preview.png, generation_config.json (when known)

`build_hub_folder` makes one from a generated folder, a 3D-Pain official-layout folder or a `DatasetDict`;
`push_to_hub` uploads it with huggingface_hub (and refuses, with one message, when `HF_HUB_OFFLINE` is set).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from datasets import DatasetDict
from datasets.table import embed_table_storage

from .card import write_dataset_card
from generation.columns import SPLITS
from .official import load_official_layout
from generation.parquet import ROWS_PER_ROW_GROUP, ParquetShardWriter
from generation.errors import Pain3DError

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_BYTES = 500 * 2**20  # the Hub's parquet-converter default
COPIED_FILES = ("preview.png", "generation_config.json")


class HubError(Pain3DError, RuntimeError):
    """The folder cannot be built or uploaded (target not empty, offline mode, not a dataset folder)."""


def _is_generated_folder(path: Path) -> bool:
    return any((path / "data").glob("*.parquet"))


def write_parquet_shards(
    dataset_dict: DatasetDict,
    folder: str | Path,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    row_group_size: int = ROWS_PER_ROW_GROUP,
) -> dict[str, list[Path]]:
    """Write each split to `folder/data/<split>-NNNNN-of-MMMMM.parquet`, embedding image files referenced by path.

    A shard closes after the row group that takes it past `max_shard_bytes`; shards are renamed at the end so the
    "-of-MMMMM" count is right. Empty splits get no shard. Returns the shard paths per split.
    """
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    for split, dataset in dataset_dict.items():
        if len(dataset) == 0:
            logger.warning("split %r is empty: no shard written (load_dataset cannot read an empty split)", split)
            continue
        schema = dataset.features.arrow_schema
        parts: list[Path] = []
        shard = None
        for start in range(0, len(dataset), row_group_size):
            if shard is None:
                parts.append(data / f".{split}-{len(parts):05d}.parquet")
                shard = ParquetShardWriter(parts[-1], schema, row_group_size)
            shard.write(embed_table_storage(dataset.with_format("arrow")[start : start + row_group_size]).cast(schema))
            if shard.bytes_written >= max_shard_bytes:
                shard.close()
                shard = None
        if shard is not None:
            shard.close()
        final = [data / f"{split}-{i:05d}-of-{len(parts):05d}.parquet" for i in range(len(parts))]
        for part, path in zip(parts, final):
            os.replace(part, path)
        written[split] = final
    return written


def build_hub_folder(
    source: str | os.PathLike | DatasetDict,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    generation_config: dict | None = None,
    split_csv: str | os.PathLike | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    load_path: str | None = None,
) -> Path:
    """Make `out` a Hub-ready dataset folder (see the module docstring) and return it.

    `source` is a generated folder (its shards, preview and generation config are copied), a folder in the official
    3D-Pain layout (read with `load_official_layout(source, split_csv)`, images embedded) or a `DatasetDict` with
    `pain_features` columns. A non-empty `out` is refused unless `overwrite` (then its data/ and plots/ folders
    and README.md are replaced). `load_path` is the repo id the card's example uses (default: `out`).
    """
    out = Path(out)
    if isinstance(source, (str, os.PathLike)) and Path(source).resolve() == out.resolve():
        raise HubError(f"{out} is the source folder; to refresh its card call write_dataset_card({str(out)!r})")
    generated = not isinstance(source, DatasetDict) and _is_generated_folder(Path(source))
    if not isinstance(source, DatasetDict) and not generated:
        source = load_official_layout(source, split_csv)  # read (and check) the source before touching `out`
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise HubError(f"{out} is not empty; choose an empty or new folder, or pass overwrite=True")
        shutil.rmtree(out / "data", ignore_errors=True)
        shutil.rmtree(out / "plots", ignore_errors=True)
        (out / "README.md").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    if generated:
        source = Path(source)
        (out / "data").mkdir(exist_ok=True)
        for shard in sorted((source / "data").glob("*.parquet")):
            if shard.name.split("-", 1)[0] in SPLITS:
                shutil.copy2(shard, out / "data" / shard.name)
        for name in COPIED_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
    else:
        write_parquet_shards(source, out, max_shard_bytes)
    if generation_config is not None:
        (out / "generation_config.json").write_text(json.dumps(generation_config, indent=2, sort_keys=True))
    write_dataset_card(out, generation_config, load_path=load_path)
    logger.info("Hub-ready dataset folder at %s", out)
    return out


def _is_network_error(error: BaseException | None) -> bool:
    """True when the error, or what caused it, is a connection failure of the Hub client's HTTP library."""
    while error is not None:
        if type(error).__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout", "NetworkError", "ProxyError"}:
            return True
        error = error.__cause__ or error.__context__
    return False


def _offline() -> bool:
    import huggingface_hub.constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or flag.strip().upper() in {"1", "ON", "YES", "TRUE"}


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload 3DPain dataset",
) -> str:
    """Upload a Hub-ready folder (from `build_hub_folder` or `pain3d generate`) to the dataset repo `repo_id`,
    creating it if needed. Returns the commit URL. Raises `HubError` in offline mode or for a folder that is not
    a dataset repository (no README.md or no data/*.parquet)."""
    folder = Path(folder)
    if not (folder / "README.md").is_file() or not _is_generated_folder(folder):
        raise HubError(
            f"{folder} is not a Hub-ready dataset folder (needs README.md and data/*.parquet): run "
            f"build_hub_folder(source, {str(folder)!r}) first"
        )
    if _offline():
        raise HubError(
            f"cannot push {folder} to {repo_id}: HF_HUB_OFFLINE is set, so the Hub is not contacted. Unset "
            f"HF_HUB_OFFLINE and log in (`hf auth login`, or pass token=...) to upload; the folder is ready and "
            f"loads locally with datasets.load_dataset({str(folder)!r})"
        )
    from huggingface_hub import HfApi

    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="dataset", revision=revision,
            commit_message=commit_message, ignore_patterns=[".*", "**/.*"],
        )
    except (HfHubHTTPError, LocalTokenNotFoundError, OSError) as error:  # OSError: the network layer's errors
        raise HubError(
            f"cannot push {folder} to {repo_id}: the Hub could not be reached or refused the upload "
            f"({type(error).__name__}: {error}). Check the network and log in (`hf auth login`, or pass token=...); "
            "nothing was changed locally"
        ) from None
    except Exception as error:
        if not _is_network_error(error):
            raise
        raise HubError(
            f"cannot push {folder} to {repo_id}: the Hub is not reachable ({type(error).__name__}: {error}). Check "
            "the network, or set HF_HUB_OFFLINE=1 to work offline; nothing was changed locally"
        ) from None
    logger.info("pushed %s to https://huggingface.co/datasets/%s", folder, repo_id)
    return str(getattr(commit, "commit_url", commit))
