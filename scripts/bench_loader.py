"""Benchmark: our 3D-Pain loader (`dataset_builder.load_official_layout` + `pain_dataloader`) against the official
loader's approach, on the same data, side by side, with equal outputs checked.

The official approach is re-implemented here from github.com/TaatiTeam/Pain-in-3D (`data/synthetic_face_loader.py`,
`data/split_utils.py`, as `train_vitpain.py` uses them): `glob` the image folder three times, strip suffixes per
name, `open` + `json.load` every annotation, then `SyntheticPSPIDataModule.setup()` with the split CSV (filter the
pairs three times, PSPI statistics, unique-annotation count); per item `PIL.Image.open(...).convert("RGB")` for the
image and for a neutral image of the same identity, each through Resize -> ToTensor -> Normalize (torchvision's ops,
written with PIL + torch because torchvision is not installable here), default collation.

Ours: `load_official_layout` (one scandir per folder + regex, raw JSON reads, an arrow index cached between runs)
and `pain_dataloader` (threads; one arrow read per batch; each (identity, view) neutral decoded once and cached;
per-image conversion with the same float32 operations, so outputs are bit-identical). Both loaders use the same
batch size, worker count, shuffling, drop_last and output size; times are the best of several runs because the
machine is shared.

Data: `--from-dataset DIR` exports a generated dataset folder to the official layout first; without it a synthetic
generated dataset (identities x (1 neutral + expressions) x views small PNGs) is built in memory and exported.

    python scripts/bench_loader.py                       # 200 identities x 11 expressions x 3 views, 64 px
    python scripts/bench_loader.py --from-dataset out/   # a real `pain3d generate` folder
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataset_builder import official as official_module
from dataset_builder.export import export_official
from generation.columns import DEFAULT_VIEW_NAMES, pain_features
from dataset_builder.official import identity_splits, load_official_layout
from dataset_builder.transforms import PainTransform, pain_dataloader
from generation.facs import PAIN_AUS, pspi


@dataclass
class Config:
    identities: int = 200
    expressions: int = 10  # pain expressions per identity; +1 neutral
    views: int = 3
    image_size: int = 64  # source images (px)
    resize: int = 224  # what both loaders hand the model (px)
    batch_size: int = 32
    workers: int = 2
    repeats: int = 5
    epochs: int = 3
    check_samples: int = 64
    from_dataset: str | None = None
    workdir: str | None = None
    seed: int = 0


# ---------------------------------------------------------------------------------------------------------------------
# The official approach (faithful re-implementation; see the module docstring).
# ---------------------------------------------------------------------------------------------------------------------

_OFFICIAL_SUFFIXES = ["_textured_view_", "_view_", "_bg_", "_render_", "_deform_", "_inpainted", "_textured"]
_OFFICIAL_AUS = ["AU4", "AU6", "AU7", "AU9", "AU10", "AU43"]


class OfficialSyntheticFaceDataset(torch.utils.data.Dataset):
    """`SyntheticFaceDataset(root_dir, transform=None, use_neutral_reference=True)`."""

    def __init__(self, root_dir: str, data_pairs=None, subject_to_neutral_images=None):
        self.root_dir = root_dir
        self.images_dir = os.path.join(root_dir, "meshes_inpainted")
        self.annotations_dir = os.path.join(root_dir, "annotations")
        self.subject_to_neutral_images = subject_to_neutral_images or {}
        self.data_pairs = data_pairs if data_pairs is not None else self._load_annotations()

    def _load_annotations(self):
        data_pairs = []
        annotation_files = glob.glob(os.path.join(self.annotations_dir, "*.json"))
        print("Building image index (this may take a moment)...")
        all_images = {}
        for ext in ["*.png", "*.jpg", "*.jpeg"]:
            for img_path in glob.glob(os.path.join(self.images_dir, ext)):
                base_name = os.path.splitext(os.path.basename(img_path))[0]
                for suffix in _OFFICIAL_SUFFIXES:
                    if suffix in base_name:
                        base_name = base_name.split(suffix)[0]
                        break
                all_images.setdefault(base_name, []).append(img_path)
        annotations_with_images = 0
        for ann_file in annotation_files:
            base_name = os.path.basename(ann_file).replace("_annotations.json", "")
            with open(ann_file, "r") as f:
                annotations = json.load(f)
            matching_images = all_images.get(base_name, [])
            if matching_images:
                for image_path in matching_images:
                    data_pairs.append((image_path, annotations, base_name))
                annotations_with_images += 1
                if annotations_with_images <= 3:
                    print(f"Annotation: {base_name}\n  Found {len(matching_images)} synthetic images")
            else:
                print(f"Warning: No matching synthetic images found for annotation {base_name}")
        neutral_images = []
        self.subject_to_neutral_images = {}
        for base_name, img_paths in all_images.items():
            if "_neutral" in base_name:
                neutral_images.extend(img_paths)
                subject_id = base_name.split("_neutral")[0]
                self.subject_to_neutral_images.setdefault(subject_id, []).extend(img_paths)
        neutral_annotations = {"AU4": 0, "AU6": 0, "AU7": 0, "AU9": 0, "AU10": 0, "AU43": 0, "PSPI": 0}
        for neutral_image in neutral_images:
            neutral_base_name = os.path.basename(neutral_image).replace(".png", "").replace(".jpg", "")
            data_pairs.append((neutral_image, neutral_annotations.copy(), neutral_base_name))
        print(f"Synthetic Dataset Summary: {len(annotation_files)} annotations, {len(data_pairs)} pairs")
        if not data_pairs:
            raise ValueError(f"ERROR: No data pairs found in {self.images_dir}")
        return data_pairs

    def __len__(self):
        return len(self.data_pairs)

    def __getitem__(self, idx):
        image_path, annotations, base_name = self.data_pairs[idx]
        image = Image.open(image_path).convert("RGB")
        sample = {
            "image": image,
            "au_vector": torch.tensor(self._extract_au_features(annotations), dtype=torch.float32),
            "pspi_score": torch.tensor(self._calculate_pspi(annotations), dtype=torch.float32),
            "image_path": image_path,
            "base_name": base_name,
        }
        subject_id = None
        if "_pain_" in base_name:
            subject_id = base_name.split("_pain_")[0]
        elif "_neutral" in base_name:
            subject_id = base_name.split("_neutral")[0]
        neutral_image = None
        if subject_id and subject_id in self.subject_to_neutral_images:
            neutral_paths = self.subject_to_neutral_images[subject_id]
            neutral_path = np.random.choice(neutral_paths, size=1, replace=False).item()
            neutral_image = Image.open(neutral_path).convert("RGB")
        sample["neutral_image"] = neutral_image if neutral_image is not None else image.copy()
        return sample

    def _extract_au_features(self, annotations):
        return [annotations.get(au, 0) for au in _OFFICIAL_AUS]

    def _calculate_pspi(self, annotations):
        au = {name: annotations.get(name, 0) for name in _OFFICIAL_AUS}
        value = au["AU4"] + max(au["AU6"], au["AU7"]) + max(au["AU9"], au["AU10"]) + au["AU43"]
        provided = annotations.get("PSPI", value)
        if "PSPI" in annotations and abs(provided - value) > 0.1:
            print(f"Warning: Calculated PSPI ({value}) != Provided PSPI ({provided})")
        return provided

    def get_pspi_statistics(self):
        scores = [self._calculate_pspi(a) for _, a, _ in self.data_pairs]
        return {"min": min(scores), "max": max(scores), "mean": sum(scores) / len(scores), "count": len(scores)}

    def get_unique_annotations_count(self):
        unique = set()
        for image_path, _, _ in self.data_pairs:
            basename = os.path.basename(image_path)
            base_ann = basename.split("_view_")[0].split("_bg_")[0].split("_render_")[0].split("_")[:-1]
            unique.add("_".join(base_ann))
        return len(unique)


def official_load_split_csv(csv_path):
    splits = {0: set(), 1: set(), 2: set()}
    with open(csv_path, "r") as csvfile:
        for row in csv.DictReader(csvfile):
            split_id = int(row["split"])
            if split_id in splits:
                splits[split_id].add(row["annotation_base_name"].strip())
    print(f"Loaded split CSV from {csv_path}: {sum(len(s) for s in splits.values())} annotations")
    return splits


def official_filter(data_pairs, target_split, splits):
    target = splits[target_split]
    filtered = [pair for pair in data_pairs if pair[2] in target]
    print(f"Split {target_split}: Filtered {len(filtered)} data pairs from {len(data_pairs)} total")
    return filtered


def official_setup(root: str, split_csv: str) -> dict[str, OfficialSyntheticFaceDataset]:
    """`SyntheticPSPIDataModule(split_csv=..., use_neutral_reference=True).setup()`; prints go to /dev/null."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        full = OfficialSyntheticFaceDataset(root)
        splits = official_load_split_csv(split_csv)
        result = {
            name: OfficialSyntheticFaceDataset(root, official_filter(full.data_pairs, i, splits),
                                               full.subject_to_neutral_images)
            for i, name in enumerate(("train", "validation", "test"))
        }
        stats = full.get_pspi_statistics()
        print(f"PSPI range: [{stats['min']:.1f}, {stats['max']:.1f}], {full.get_unique_annotations_count()} unique")
    return result


# The official loader's normalisation (torchvision's ImageNet statistics); our transform is given the same.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET = dict(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)


class OfficialEvalTransform:
    """torchvision Compose([Resize((S, S)), ToTensor(), Normalize(ImageNet)]) on a PIL image, same ops."""

    def __init__(self, size: int):
        self.size = size
        self.mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.resize((self.size, self.size), Image.BILINEAR)
        tensor = torch.from_numpy(np.array(image, np.uint8, copy=True)).view(self.size, self.size, 3)
        tensor = tensor.permute((2, 0, 1)).contiguous().to(dtype=torch.float32).div(255)
        return tensor.sub_(self.mean).div_(self.std)


class OfficialTransformWrapper(torch.utils.data.Dataset):
    """`TransformWrapper(dataset, val_test_transform)`."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        sample = self.dataset[idx]
        sample["image"] = self.transform(sample["image"])
        if not isinstance(sample["neutral_image"], torch.Tensor):
            sample["neutral_image"] = self.transform(sample["neutral_image"])
        return sample


def official_dataloader(dataset, config: Config) -> torch.utils.data.DataLoader:
    """`SyntheticPSPIDataModule.train_dataloader()` (pin_memory off: no GPU here)."""
    return torch.utils.data.DataLoader(
        OfficialTransformWrapper(dataset, OfficialEvalTransform(config.resize)),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=2 if config.workers > 0 else None,
        drop_last=True,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def synthetic_generated_dataset(config: Config):
    """A generated-layout DatasetDict (pain_features columns) of smooth random PNGs, identity-disjoint 70/20/10."""
    from datasets import Dataset, DatasetDict

    rng = np.random.default_rng(config.seed)
    size = config.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    view_names = list(DEFAULT_VIEW_NAMES[: config.views]) + [f"view_{i}" for i in range(3, config.views)]

    def png() -> bytes:
        a, b, c = rng.uniform(0, 255, 3)
        image = np.stack([a * xx + c * (1 - yy), b * yy + a * (1 - xx), c * xx * yy + b * (1 - xx)], -1)
        image = (image + rng.normal(0, 3, image.shape)).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    identities = [f"id_{i:05d}" for i in range(config.identities)]
    split_of = identity_splits(identities)
    rows: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for identity in identities:
        neutrals = [png() for _ in view_names]
        for expression in range(config.expressions + 1):
            if expression == 0:
                aus = {name: 0.0 for name in PAIN_AUS}
            else:
                aus = {name: float(rng.integers(0, 2 if name == "AU43" else 6)) for name in PAIN_AUS}
            for view, view_name in enumerate(view_names):
                image = neutrals[view] if expression == 0 else png()
                rows[split_of[identity]].append({
                    "image": {"bytes": image, "path": None},
                    "neutral_image": {"bytes": neutrals[view], "path": None},
                    "heatmap": None, "sample_id": f"{identity}_e{expression:02d}_{view_name}",
                    "identity_id": identity, "expression_index": expression, "view": view,
                    "yaw": 0.0, "pitch": 0.0, "action_units": aus, "pspi": pspi(aus),
                    "age": None, "age_group": None, "gender": None, "ethnicity": None, "landmarks_2d": None,
                })
    features = pain_features(view_names)
    return DatasetDict({split: Dataset.from_list(r, features=features) for split, r in rows.items()})


# ---------------------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------------------


def best_time(fn, repeats: int, before=None) -> tuple[float, object]:
    """Fastest of `repeats` calls (the usual estimate on a shared, noisy machine) and the last result."""
    times, result = [], None
    for _ in range(repeats):
        if before:
            before()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def epoch_time(loader) -> tuple[float, int]:
    start, rows = time.perf_counter(), 0
    for batch in loader:
        rows += len(batch["pspi_labels"] if "pspi_labels" in batch else batch["pspi_score"])
    return time.perf_counter() - start, rows


def stem(path: str) -> str:
    return os.path.basename(path).rsplit(".", 1)[0]


def check_equal_outputs(official_train, ours_train, config: Config) -> str:
    """All train labels equal, and for sampled rows the image and neutral tensors are bit-identical."""
    official_labels = {
        stem(path): (float(official_train._calculate_pspi(a)), official_train._extract_au_features(a))
        for path, a, _ in official_train.data_pairs
    }
    columns = ours_train.select_columns(["sample_id", "pspi", "action_units"]).to_dict()
    our_labels = {
        sid: (float(p), [aus[name] for name in _OFFICIAL_AUS])
        for sid, p, aus in zip(columns["sample_id"], columns["pspi"], columns["action_units"])
    }
    if official_labels.keys() != our_labels.keys():
        raise AssertionError(f"different train samples: {len(official_labels)} official vs {len(our_labels)} ours")
    differing = [s for s in our_labels if our_labels[s] != official_labels[s]]
    if differing:
        raise AssertionError(f"{len(differing)} train samples have different labels, e.g. {differing[:3]}")

    rng = np.random.default_rng(config.seed)
    picks = sorted(rng.choice(len(ours_train), size=min(config.check_samples, len(ours_train)), replace=False))
    ours = PainTransform.for_dataset(ours_train, image_size=config.resize, return_ids=True, **IMAGENET)
    batch = ours(ours_train.select(picks).with_format(None)[:])
    transform = OfficialEvalTransform(config.resize)
    by_stem = {stem(path): i for i, (path, _, _) in enumerate(official_train.data_pairs)}
    wrapped = OfficialTransformWrapper(official_train, transform)
    for row, sample_id in enumerate(batch["sample_id"]):
        theirs = wrapped[by_stem[sample_id]]
        if not torch.equal(theirs["image"], batch["pixel_values"][row]):
            raise AssertionError(f"image tensors differ for {sample_id}")
        if theirs["pspi_score"].item() != batch["pspi_labels"][row].item():
            raise AssertionError(f"PSPI differs for {sample_id}")
        if not torch.equal(theirs["au_vector"], batch["action_unit_labels"][row]):
            raise AssertionError(f"AU vectors differ for {sample_id}")
        # The official loader draws a neutral of the same identity from any view; ours is the same view's.
        neutral_path = ours_train[int(picks[row])]["neutral_image"].filename
        if not torch.equal(transform(Image.open(neutral_path).convert("RGB")), batch["neutral_pixel_values"][row]):
            raise AssertionError(f"neutral tensors differ for {sample_id}")
    return (
        f"labels of {len(our_labels)}/{len(official_labels)} train samples equal; image, neutral (same view), "
        f"PSPI and AU tensors of {len(picks)} sampled rows bit-identical"
    )


def run(config: Config) -> None:
    if config.workdir:
        return run_in(config, Path(config.workdir))
    with tempfile.TemporaryDirectory(prefix="pain3d-bench-") as workdir:
        return run_in(config, Path(workdir))


def run_in(config: Config, workdir: Path) -> None:
    root = workdir / "official"
    start = time.perf_counter()
    if config.from_dataset:
        source, label = config.from_dataset, f"generated dataset {config.from_dataset}"
    else:
        source = synthetic_generated_dataset(config)
        label = (
            f"synthetic: {config.identities} identities x {config.expressions + 1} expressions x {config.views} views, "
            f"{config.image_size} px PNG"
        )
    export = export_official(source, root, overwrite=True)
    split_csv = str(export.split_csv)
    prepare_s = time.perf_counter() - start
    cache_dir = workdir / "index-cache"

    # Index: official setup vs ours without cache (cold, as a first run) and with the cached index (later runs).
    official_s, official_splits = best_time(lambda: official_setup(str(root), split_csv), config.repeats)
    load = lambda use_cache: load_official_layout(  # noqa: E731
        root, split_csv, include_neutral_rows=False, use_cache=use_cache, cache_dir=cache_dir
    )
    cold_s, ours = best_time(lambda: load(False), config.repeats, before=official_module._check_labels.cache_clear)
    load(True)  # writes the cache
    warm_s, ours = best_time(lambda: load(True), config.repeats)

    outputs = check_equal_outputs(official_splits["train"], ours["train"], config)

    # One epoch over the train split from a fresh loader (new workers, empty caches): same batch size, worker count,
    # shuffling, drop_last and output size. Alternated, fastest of `epochs` each.
    official_epochs, our_epochs = [], []
    for repeat in range(config.epochs):
        torch.manual_seed(config.seed + repeat)
        np.random.seed(config.seed + repeat)
        official_epochs.append(epoch_time(official_dataloader(official_splits["train"], config)))
        our_loader = pain_dataloader(
            ours["train"], PainTransform.for_dataset(ours["train"], image_size=config.resize, **IMAGENET),
            batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=config.workers,
            seed=config.seed + repeat,
        )
        our_epochs.append(epoch_time(our_loader))
    official_epoch_s, official_rows = min(official_epochs)
    our_epoch_s, our_rows = min(our_epochs)

    images = export.pain_images + export.neutral_images
    print(f"3D-Pain loader benchmark ({label})")
    print(f"  official layout: {images} images, {export.annotations} annotations, split CSV; "
          f"prepared in {prepare_s:.1f} s")
    print(f"  train split {len(ours['train'])} rows; batch {config.batch_size}, {config.workers} workers "
          f"(official: processes, ours: threads), {config.resize} px output; best of {config.repeats} index runs and "
          f"{config.epochs} epochs; {os.cpu_count()} CPUs")
    print(f"  {'':34}{'official approach':>18}{'ours':>12}{'speed-up':>10}")
    rows = [
        ("index, first run (no cache)", official_s, cold_s),
        ("index, later runs (cached index)", official_s, warm_s),
        (f"one train epoch ({our_rows} rows)", official_epoch_s, our_epoch_s),
    ]
    for name, theirs, mine in rows:
        print(f"  {name:34}{theirs:>16.3f} s{mine:>10.3f} s{theirs / mine:>9.1f}x")
    if official_rows != our_rows:
        print(f"  note: the official epoch yielded {official_rows} rows, ours {our_rows}")
    print(f"  all epochs (official / ours, s): {' '.join(f'{t:.2f}' for t, _ in official_epochs)} / "
          f"{' '.join(f'{t:.2f}' for t, _ in our_epochs)}")
    print(f"  equal outputs: {outputs}")
    print(f"  indexing speed-up {official_s / warm_s:.1f}x (cached) / {official_s / cold_s:.1f}x (first run); "
          f"iteration speed-up {official_epoch_s / our_epoch_s:.1f}x")


def parse_args(argv=None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-dataset", metavar="DIR", help="generated dataset folder to export and load")
    parser.add_argument("--identities", type=int, default=defaults.identities)
    parser.add_argument("--expressions", type=int, default=defaults.expressions, help="pain expressions per identity")
    parser.add_argument("--views", type=int, default=defaults.views)
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="synthetic source images (px)")
    parser.add_argument("--resize", type=int, default=defaults.resize, help="output size of both loaders (px)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="index timing runs (best kept)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epoch timing runs (best kept)")
    parser.add_argument("--workdir", help="keep the exported layout and index cache here (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    return Config(**{k.replace("-", "_"): v for k, v in vars(args).items()})


if __name__ == "__main__":
    run(parse_args(sys.argv[1:]))
