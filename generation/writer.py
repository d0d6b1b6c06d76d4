"""Writes a generated dataset's data: parquet shards per split, generation_config.json and the manifest. The card
and preview sheet are the data side's (`dataset_builder.finalize_dataset_folder`), written by the layer above.

Work is planned as shards known in advance (`data/<split>-NNNNN-of-MMMMM.parquet`, identity-disjoint splits), each
written atomically; a resumed, parallel (`workers`) or distributed (`rank` / `world_size`, e.g. under
`accelerate launch`) run skips finished shards and writes the same bytes a single uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import platform
import signal
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from datasets import Features

from .columns import SPLITS, ground_truth_features, pain_features
from .config import GenerationConfig
from .errors import OutputError
from .face.model import FaceModel
from .manifest import LOCK_NAME, PARTIAL_SUFFIX, ManifestError, check_files, forget, read_manifest, record, remove_written, writer_lock
from .parquet import write_parquet
from .pipeline import PainFaceGenerator
from .sampling.identity import identity_spec, identity_split

logger = logging.getLogger(__name__)

CONFIG_FILE = "generation_config.json"
MANIFEST_TOOL = "pain3d generate"
VERSIONED_PACKAGES = (
    "numpy", "pillow", "pyrender", "PyOpenGL", "trimesh", "datasets", "pyarrow", "scipy", "torch", "diffusers",
    "transformers",
)


@dataclass(frozen=True)
class DatasetKind:
    """What the writer writes: a dataset's config class (`from_dict` / `to_dict`, with `num_identities`,
    `identities_per_shard`, `split_fractions` and `seed` for the shard plan), its columns (`features(config)`) and
    its rows (`producer(config, face_model, device)` is called `producer(index)` for identity `index`'s rows, has
    `render_seconds` and `close()`). Every part is importable by name, so worker processes can be given it."""

    name: str  # recorded as "kind" in generation_config.json (the stills' record has none)
    tool: str  # the command, as the manifest names it
    config_class: type
    features: Callable
    producer: Callable


class _Stills:
    """The rows of `pain3d generate`: `PainFaceGenerator` over each identity's spec."""

    def __init__(self, config: GenerationConfig, face_model: FaceModel, device: str | None = None):
        self.config, self.face_model = config, face_model
        self.generator = PainFaceGenerator(config, face_model, device=device)

    @property
    def render_seconds(self) -> float:
        return self.generator.render_seconds

    def __call__(self, index: int) -> list[dict]:
        return self.generator(identity_spec(self.config, self.face_model, index))

    def close(self) -> None:
        self.generator.close()


def _still_features(config: GenerationConfig) -> Features:
    return Features({**pain_features([v.name for v in config.views], config.extended_aus),
                     **ground_truth_features(config.passes)})


STILLS = DatasetKind("stills", MANIFEST_TOOL, GenerationConfig, _still_features, _Stills)
KINDS = {"clips": "generation.clips.writer:CLIPS"}  # the other kinds, imported when a folder of theirs is read


def dataset_kind(record: dict) -> DatasetKind:
    """The kind of a folder, from its generation_config.json record."""
    name = record.get("kind", STILLS.name)
    if name == STILLS.name:
        return STILLS
    if name not in KINDS:
        raise OutputError(f"{CONFIG_FILE} names an unknown dataset kind {name!r} (known: stills, {', '.join(KINDS)}): "
                          "it was written by another pain3d; verify it with that version")
    import importlib

    module, attribute = KINDS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Shard:
    split: str
    number: int
    total: int
    identities: tuple[int, ...]

    @property
    def relative_path(self) -> str:
        return f"data/{self.split}-{self.number:05d}-of-{self.total:05d}.parquet"

    def rows(self, config: GenerationConfig) -> int:
        return len(self.identities) * len(config.views) * (config.expressions_per_identity + 1)


def plan_shards(config: GenerationConfig) -> list[Shard]:
    """Every shard of the dataset, ordered by first identity (so work proceeds through the identities)."""
    by_split: dict[str, list[int]] = {split: [] for split in SPLITS}
    for index in range(config.num_identities):
        # a kind whose config wraps the stills' (clips: `generation`) deals its identities to the same splits
        by_split[identity_split(getattr(config, "generation", config), index)].append(index)
    shards = []
    size = config.identities_per_shard
    for split, members in by_split.items():
        chunks = [tuple(members[k : k + size]) for k in range(0, len(members), size)]
        shards += [Shard(split, n, len(chunks), chunk) for n, chunk in enumerate(chunks)]
    return sorted(shards, key=lambda shard: shard.identities[0])


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("pain3d", *VERSIONED_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# The generator's revision: raised whenever the same parameters start to give other bytes (random streams, split
# dealing, encodings), so `--resume` never mixes shards of two revisions in one folder. Revision 2: named texture
# streams, balanced split dealing, strand hair and lash cards, ground-truth columns (issues 30-34).
GENERATOR_REVISION = 2


def config_record(config: GenerationConfig, face_model_sha256: str | None = None, kind: DatasetKind = STILLS) -> dict:
    kind_entry = {} if kind is STILLS else {"kind": kind.name}  # the stills' record stays as it was
    return {"config": config.to_dict(), "face_model": face_model_sha256, "versions": package_versions(),
            "generator_revision": GENERATOR_REVISION, **kind_entry}


def prepare_output(output: Path, config: GenerationConfig, resume: bool, overwrite: bool, record: dict) -> None:
    """Check and prepare the output folder; write generation_config.json. Never deletes what we did not write."""
    tool = dataset_kind(record).tool
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: choose one")
    if output.exists() and not output.is_dir():
        raise OutputError(f"output {output} exists and is not a folder")
    existing = sorted(p.name for p in output.iterdir() if p.name != LOCK_NAME) if output.is_dir() else []
    if existing and resume:
        saved = output / CONFIG_FILE
        if not saved.is_file():
            raise OutputError(f"cannot resume: {output} has no {CONFIG_FILE}; it was not written by {tool}")
        try:  # the config is part of what the manifest protects: an edited record is not the run's record
            changed = check_files(output, [CONFIG_FILE])
        except ManifestError as error:
            raise OutputError(str(error)) from None
        if changed:
            raise OutputError(
                f"cannot resume {output}: its {CONFIG_FILE} is not the one pain3d wrote ({changed[CONFIG_FILE]}), so "
                "the shards may come from other parameters; use --overwrite to start again, or a new folder"
            )
        try:
            saved_record = json.loads(saved.read_text())
            previous = saved_record["config"]
        except (ValueError, KeyError, TypeError) as error:
            raise OutputError(
                f"cannot resume {output}: its {CONFIG_FILE} is unreadable ({type(error).__name__}: {error}), so the "
                "parameters it was generated with are unknown; use --overwrite to start again, or a new folder"
            ) from None
        try:  # fields added since that run was started take their defaults, which reproduce its bytes
            previous = json.loads(json.dumps(type(config).from_dict(previous).to_dict()))
        except (TypeError, ValueError):
            pass  # a record this version cannot read: reported as a difference below
        current = json.loads(json.dumps(record["config"]))  # compare as JSON sees it (tuples become lists)
        if previous != current:
            changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
            raise OutputError(
                f"cannot resume {output}: it was generated with different parameters ({', '.join(changed)}); "
                "rerun with the original parameters, or use --overwrite to start again"
            )
        revision = saved_record.get("generator_revision", 1)  # records without one predate revisions
        if revision != record.get("generator_revision"):
            raise OutputError(
                f"cannot resume {output}: it was generated by generator revision {revision}, and this pain3d is "
                f"revision {record.get('generator_revision')}, whose shards would differ; use --overwrite to start "
                "again, or a new folder"
            )
        before, now = saved_record.get("face_model"), record.get("face_model")
        if before and now and before != now:  # shards from two face models must never be mixed in one dataset
            raise OutputError(
                f"cannot resume {output}: it was generated with another face model (sha256 {before[:12]}..., this "
                f"one is {now[:12]}...); rerun with the original face model, or use --overwrite to start again"
            )
    elif existing and overwrite:
        try:  # deletes only files recorded in the manifest, and nothing at all if anything else is there
            remove_written(output)
        except ManifestError as error:
            raise OutputError(str(error)) from None
    elif existing:
        raise OutputError(
            f"output {output} is not empty: pass --resume to continue an interrupted run, --overwrite to replace "
            "it, or choose a new folder"
        )
    try:
        (output / "data").mkdir(parents=True, exist_ok=True)
        (output / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        planned = [shard.relative_path for shard in plan_shards(config)]
        record_files(output, [CONFIG_FILE], planned=planned, tool=tool)
    except ManifestError as error:
        raise OutputError(str(error)) from None
    except OSError as error:
        raise OutputError(f"cannot write to {output} ({error.strerror or error}); choose a writable folder") from None


def record_files(output: Path, written, planned=(), tool: str = MANIFEST_TOOL) -> dict:
    return record(output, written, planned=planned, tool=tool)


def bad_shards(output: Path, shards: list[Shard]) -> dict[str, str]:
    """Shards whose bytes are not the ones recorded when they were written: {path: what is wrong}. A shard that
    was never recorded (an interrupted write, or a folder from a pain3d without manifests) counts as not done."""
    return check_files(output, [shard.relative_path for shard in shards])


def verify_dataset(output: str | Path) -> tuple[int, dict[str, str]]:
    """Check a generated folder against its manifest: every planned shard present with the sha256 recorded when it
    was written, and every other recorded file unchanged. Returns (files checked, {path: what is wrong}).
    Shards that were never recorded (a pain3d without manifests) are read with their page checksums instead."""
    output = Path(output)
    try:
        saved = json.loads((output / CONFIG_FILE).read_text())
        config = dataset_kind(saved).config_class.from_dict(saved["config"])
        manifest = read_manifest(output)
    except ManifestError as error:
        raise OutputError(str(error)) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OutputError(
            f"{output} is not a dataset written by pain3d generate: its {CONFIG_FILE} is missing or unreadable "
            f"({type(error).__name__}: {error})"
        ) from None
    recorded = (manifest or {"files": {}})["files"]
    shards = [shard.relative_path for shard in plan_shards(config)]
    problems = check_files(output, [path for path in recorded if path not in shards])
    for path in sorted((output / "data").glob("*")):  # `load_dataset` reads every shard there: only planned ones
        relative = f"data/{path.name}"
        if relative not in shards and relative not in recorded and not path.name.endswith(PARTIAL_SUFFIX):
            problems[relative] = "not part of this dataset (no shard of its plan): load_dataset would mix it in"
    for path in shards:
        if path in recorded:
            problems.update(check_files(output, [path]))
        elif not (output / path).is_file():
            problems[path] = "missing: the run was interrupted"
        else:
            try:
                pq.read_table(output / path, page_checksum_verification=True)
                problems[path] = "not recorded in the manifest (an interrupted write, or an older pain3d)"
            except (OSError, pa.ArrowException) as error:
                problems[path] = f"unreadable ({error})"
    return len(set(recorded) | set(shards)), problems


# ----------------------------------------------------------------------------------------------- rendering workers
def _producer(config_dict: dict, face_model_path: str, device: str | None, kind: DatasetKind):
    """The row producer of one rendering process (its own face model and OpenGL context)."""
    config = kind.config_class.from_dict(config_dict)
    return kind.producer(config, FaceModel.load(face_model_path), device=device)


def _rows_of(producer, index: int) -> tuple[int, list[dict], float]:
    """Rows of one identity and the seconds its renders took."""
    before = producer.render_seconds
    rows = producer(index)
    return index, rows, producer.render_seconds - before


# A pool worker's producer: the one piece of process state, set by the pool's initializer in each worker process
# (the main process never sets it: a serial run holds its producer in a local).
_POOL_PRODUCER = None


def _init_pool_worker(config_dict: dict, face_model_path: str, device: str | None, kind: DatasetKind) -> None:
    global _POOL_PRODUCER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _POOL_PRODUCER = _producer(config_dict, face_model_path, device, kind)


def _render_in_pool(index: int) -> tuple[int, list[dict], float]:
    return _rows_of(_POOL_PRODUCER, index)


def _encode_classes(rows: list[dict], features) -> list[dict]:
    """ClassLabel strings -> ids, as `datasets` stores them."""
    labels = {name: feature for name, feature in features.items() if hasattr(feature, "str2int")}
    for row in rows:
        for name, feature in labels.items():
            row[name] = feature.str2int(row[name])
    return rows


def generate_dataset(output: str | Path, config: GenerationConfig, face_model_path: str | Path, *args, rank: int = 0,
                     **kwargs) -> dict:
    """Generate (this rank's share of) the dataset's shards into `output`, holding the folder's writer lock (rank 0,
    for the whole run: a second writer is refused, naming this one). Every rank's shards are done on return. The card
    and preview sheet are `dataset_builder.finalize_dataset_folder(output)`'s. Arguments as `_generate_dataset`."""
    with writer_lock(output, kwargs.get("kind", STILLS).tool) if rank == 0 else contextlib.nullcontext():
        return _generate_dataset(output, config, face_model_path, *args, rank=rank, **kwargs)


def _generate_dataset(
    output: str | Path,
    config: GenerationConfig,
    face_model_path: str | Path,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
    face_model_sha256: str | None = None,
    device: str | None = None,
    kind: DatasetKind = STILLS,
) -> dict:
    """Generate (this rank's share of) the dataset's shards into `output`; on return every rank's shards are done
    (`barrier`). The card and preview sheet are `dataset_builder.finalize_dataset_folder(output)`'s. `device` is where diffusion backends run (default: this process's GPU, else the CPU).

    Returns a summary: rows and identities written by this process, wall seconds, images per second, and the
    seconds spent inside the renderer summed over worker processes (`render_seconds`).
    """
    from tqdm.auto import tqdm

    output = Path(output)
    barrier = barrier or (lambda: None)
    if rank == 0:
        prepare_output(output, config, resume, overwrite, config_record(config, face_model_sha256, kind))
    barrier()

    features = kind.features(config)  # `kind` is what is written: the stills, or e.g. generation.clips' CLIPS
    schema = features.arrow_schema
    shards = [s for k, s in enumerate(plan_shards(config)) if k % world_size == rank]
    bad = bad_shards(output, shards)
    todo = [s for s in shards if s.relative_path in bad]
    for shard in todo:  # leftovers of an interrupted write of this rank's own shards
        (output / (shard.relative_path + ".partial")).unlink(missing_ok=True)
        if (output / shard.relative_path).exists():
            logger.warning("rank %d: rendering %s again (%s)", rank, shard.relative_path, bad[shard.relative_path])
    forget(output, [shard.relative_path for shard in todo])
    identities = [index for shard in todo for index in shard.identities]
    logger.info(
        "rank %d/%d: %d shards (%d identities) to render, %d already complete",
        rank, world_size, len(todo), len(identities), len(shards) - len(todo),
    )

    start = time.perf_counter()
    rows_written, render_seconds = 0, 0.0
    bar = tqdm(total=len(identities), unit="identity", disable=not progress, desc=f"rank {rank}" if world_size > 1 else "generate")
    results = _identity_results(identities, config, face_model_path, workers, device, kind)
    try:
        for shard in todo:
            rows: list[dict] = []
            for expected in shard.identities:
                index, identity_rows, seconds = next(results)
                assert index == expected  # results arrive in submission order
                rows += identity_rows
                render_seconds += seconds
                bar.update(1)
                elapsed = time.perf_counter() - start
                bar.set_postfix(images_per_s=f"{(rows_written + len(rows)) / max(elapsed, 1e-9):.1f}")
            try:  # written to `.partial` and renamed when whole: a full disk leaves no shard that looks finished
                write_parquet(output / shard.relative_path, _encode_classes(rows, features), schema)
            except OSError as error:
                raise OutputError(
                    f"cannot write {shard.relative_path} in {output} ({error.strerror or error}): free some space, "
                    "then rerun with --resume (finished shards are kept)"
                ) from None
            record_files(output, [shard.relative_path], tool=kind.tool)
            rows_written += len(rows)
    finally:
        results.close()
        bar.close()
    seconds = time.perf_counter() - start
    barrier()
    return {
        "rows": rows_written,
        "identities": len(identities),
        "seconds": seconds,
        "images_per_second": rows_written / seconds if seconds > 0 else 0.0,
        "render_seconds": render_seconds,
    }


def _identity_results(identities: list[int], config: GenerationConfig, face_model_path, workers: int, device=None,
                      kind: DatasetKind = STILLS):
    """Generator of (index, rows, render seconds) in submission order, rendered in-process or by a pool of worker processes."""
    if not identities:  # a generator all the same: the caller closes it
        return (result for result in ())
    if workers <= 1:
        def serial():
            producer = _producer(config.to_dict(), str(face_model_path), device, kind)
            try:
                for index in identities:
                    yield _rows_of(producer, index)
            finally:
                producer.close()

        return serial()
    # spawn: every worker opens its own OpenGL context; forking a process that holds one is unsafe
    context = multiprocessing.get_context("spawn")
    # Workers start with Ctrl-C ignored (inherited across exec), so an interrupt reaches only this process, which
    # stops the pool and prints one line instead of a traceback per worker.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = context.Pool(
            workers, initializer=_init_pool_worker, initargs=(config.to_dict(), str(face_model_path), device, kind)
        )
    finally:
        signal.signal(signal.SIGINT, previous)

    def parallel():
        try:
            yield from pool.imap(_render_in_pool, identities, chunksize=1)
        finally:
            pool.terminate()
            pool.join()

    return parallel()
