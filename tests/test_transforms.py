"""Training views: tensors, units, normalisation, aligned augmentation, flips, seeding, caching and the loaders."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

from dataset_builder import HEATMAP_UNITS_PER_MM, pain_features
from dataset_builder.transforms import Augmentation, PainTransform, pain_dataloader
from generation.facs import PAIN_AUS

SIZE = 24
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # any statistics will do: these are ImageNet's
STATS = dict(image_mean=MEAN, image_std=STD)
NO_PHOTOMETRY = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, blur_sigma=(0.0, 0.0))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _pattern(seed: int) -> np.ndarray:
    """A smooth grey pattern (so bilinear warps stay well defined), uint8 (SIZE, SIZE)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    rng = np.random.default_rng(seed)
    return (127 + 60 * np.sin(xx * rng.uniform(0.2, 0.5)) + 60 * np.cos(yy * rng.uniform(0.2, 0.5))).astype(np.uint8)


def make_rows(n: int = 6, *, same_pattern: bool = False) -> dict[str, list]:
    """Rows with pain_features columns; with `same_pattern`, image, neutral and heatmap show one grey pattern."""
    rows = {name: [] for name in pain_features()}
    for i in range(n):
        grey = _pattern(i)
        image = np.repeat(grey[..., None], 3, axis=2)
        neutral = image if same_pattern else np.repeat(_pattern(100 + i)[..., None], 3, axis=2)
        heatmap = grey.astype(np.uint16) * 10 if same_pattern else np.full((SIZE, SIZE), 1500 * i, np.uint16)
        rows["image"].append({"bytes": _png(image), "path": None})
        rows["neutral_image"].append({"bytes": _png(neutral), "path": None})
        rows["heatmap"].append({"bytes": _png(heatmap), "path": None})
        rows["sample_id"].append(f"id_{i:05d}_e01_v{i % 3}")
        rows["identity_id"].append(f"id_{i:05d}")
        rows["expression_index"].append(1)
        rows["view"].append(i % 3)
        rows["yaw"].append(0.0)
        rows["pitch"].append(0.0)
        rows["action_units"].append({name: float((i + k) % 6 if name != "AU43" else i % 2)
                                     for k, name in enumerate(PAIN_AUS)})
        rows["pspi"].append(float(i))
        for name in ("age", "age_group", "gender", "ethnicity", "landmarks_2d"):
            rows[name].append(None)
    return rows


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.from_dict(make_rows(), features=pain_features())


def _unnormalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return pixels * std + mean


def test_eval_transform_tensors_units_and_labels(dataset):
    transform = PainTransform.for_dataset(dataset, image_size=32, **STATS)
    batch = dataset.with_transform(transform)[0:4]
    assert batch["pixel_values"].shape == batch["neutral_pixel_values"].shape == (4, 3, 32, 32)
    assert batch["heatmap"].shape == (4, 1, 32, 32) and batch["heatmap"].dtype == torch.float32
    # Constant heatmaps of 1500*i micrometres -> 1.5*i millimetres after the (bilinear) resize.
    assert torch.allclose(batch["heatmap"].flatten(1).mean(1), torch.tensor([0.0, 1.5, 3.0, 4.5]), atol=1e-5)
    assert HEATMAP_UNITS_PER_MM == 1000
    assert batch["pspi_labels"].tolist() == [0.0, 1.0, 2.0, 3.0]
    expected_aus = [[row[name] for name in PAIN_AUS] for row in dataset[0:4]["action_units"]]
    assert batch["action_unit_labels"].tolist() == expected_aus
    assert batch["view"].tolist() == [0, 1, 2, 0] and batch["has_neutral"].all() and batch["has_heatmap"].all()
    # The given normalisation of the resized image, exactly as ToTensor + Normalize compute it.
    resized = np.asarray(dataset[1]["image"].convert("RGB").resize((32, 32), Image.BILINEAR))
    reference = torch.from_numpy(resized.copy()).permute(2, 0, 1).float().div(255)
    reference = reference.sub_(torch.tensor(MEAN).view(3, 1, 1)).div_(torch.tensor(STD).view(3, 1, 1))
    assert torch.equal(batch["pixel_values"][1], reference)


def test_same_geometry_for_image_neutral_and_heatmap(dataset):
    rows = Dataset.from_dict(make_rows(8, same_pattern=True), features=pain_features())
    augmentation = Augmentation(hflip_p=0.5, rotation_deg=15, translate=0.15, scale=(0.8, 1.2), **NO_PHOTOMETRY)
    transform = PainTransform.for_dataset(rows, image_size=SIZE, train=True, augmentation=augmentation, seed=3,
                                         **STATS)
    batch = transform(rows.with_format(None)[:])
    image = _unnormalise(batch["pixel_values"])
    neutral = _unnormalise(batch["neutral_pixel_values"])
    heatmap_grey = batch["heatmap"] * HEATMAP_UNITS_PER_MM / 10 / 255  # grey level in [0, 1], like the image
    unaugmented = PainTransform(SIZE, **STATS)(rows.with_format(None)[:])["pixel_values"]
    assert not torch.allclose(image, _unnormalise(unaugmented))
    assert torch.allclose(image, neutral, atol=1e-5)
    assert torch.allclose(image[:, :1], heatmap_grey, atol=1e-4)


def test_horizontal_flip_mirrors_everything_and_swaps_left_right(dataset):
    augmentation = Augmentation(hflip_p=1.0, rotation_deg=0, translate=0, scale=(1.0, 1.0), **NO_PHOTOMETRY)
    flipped = PainTransform.for_dataset(dataset, image_size=SIZE, train=True, augmentation=augmentation, **STATS)
    plain = PainTransform.for_dataset(dataset, image_size=SIZE, **STATS)
    rows = dataset.with_format(None)[0:6]
    out, reference = flipped(rows), plain(rows)
    for key in ("pixel_values", "neutral_pixel_values", "heatmap"):
        assert torch.allclose(out[key], reference[key].flip(-1), atol=1e-5), key
    names = dataset.features["view"].names
    assert [names[v] for v in reference["view"]] == ["frontal", "left", "right"] * 2
    assert [names[v] for v in out["view"]] == ["frontal", "right", "left"] * 2
    assert torch.equal(out["pspi_labels"], reference["pspi_labels"])
    assert torch.equal(out["action_unit_labels"], reference["action_unit_labels"])


def test_augmentation_is_seeded(dataset):
    rows = dataset.with_format(None)[:]

    def make(seed: int) -> PainTransform:
        return PainTransform.for_dataset(dataset, image_size=SIZE, train=True, seed=seed, **STATS)

    first, again, other = make(1)(rows), make(1)(rows), make(2)(rows)
    assert torch.equal(first["pixel_values"], again["pixel_values"])
    assert not torch.equal(first["pixel_values"], other["pixel_values"])
    generator = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(make(1)(rows, generator())["pixel_values"], make(9)(rows, generator())["pixel_values"])
    assert first["pixel_values"].abs().max() < 5  # still normalised values


def test_missing_neutral_and_heatmap(dataset):
    rows = make_rows(3)
    rows["neutral_image"][1] = None
    rows["heatmap"] = [None] * 3
    data = Dataset.from_dict(rows, features=pain_features())
    batch = PainTransform.for_dataset(data, image_size=SIZE, **STATS)(data.with_format(None)[:])
    assert batch["has_neutral"].tolist() == [True, False, True]
    assert torch.count_nonzero(batch["neutral_pixel_values"][1]) == 0
    assert "heatmap" not in batch and "has_heatmap" not in batch  # no row has one (e.g. the official layout)


def test_colourised_heatmap_is_refused(dataset):
    rows = make_rows(1)
    rows["heatmap"][0] = {"bytes": _png(np.zeros((SIZE, SIZE, 3), np.uint8)), "path": None}
    data = Dataset.from_dict(rows, features=pain_features())
    with pytest.raises(ValueError, match="one-channel 16-bit PNG"):
        PainTransform(SIZE, **STATS)(data.with_format(None)[:])


def test_neutral_cache_decodes_each_identity_view_once(dataset, monkeypatch):
    rows = make_rows(3)
    for name in rows:  # three expressions of the same identity and view
        rows[name] = rows[name][:1] * 3
    data = Dataset.from_dict(rows, features=pain_features())
    transform = PainTransform.for_dataset(data, image_size=SIZE, **STATS)
    decoded = []
    original = transform._resize_rgb
    monkeypatch.setattr(transform, "_resize_rgb", lambda value: decoded.append(1) or original(value))
    first = transform(data.with_format(None)[:])
    assert len(decoded) == 3 + 1  # three pain images, one neutral
    assert torch.equal(first["neutral_pixel_values"][0], first["neutral_pixel_values"][2])


def test_pain_dataloader_threads_and_processes_agree(dataset):
    data = Dataset.from_dict(make_rows(10), features=pain_features())
    transform = PainTransform(SIZE, **STATS)  # pain_dataloader reads the view names from the dataset
    threads = pain_dataloader(data, transform, batch_size=4, shuffle=True, seed=7, num_workers=2)
    assert len(threads) == 3
    batches = list(threads)
    assert [len(b["pspi_labels"]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b["pspi_labels"] for b in batches]).tolist()) == [float(i) for i in range(10)]
    again = list(pain_dataloader(data, transform, batch_size=4, shuffle=True, seed=7, num_workers=0))
    assert all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(batches, again))
    in_order = list(pain_dataloader(data, transform, batch_size=4, drop_last=True, backend="processes", num_workers=0))
    assert len(in_order) == 2 and in_order[0]["pspi_labels"].tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="backend"):
        pain_dataloader(data, transform, backend="gpu")


def test_normalisation_is_the_models_or_explicit(dataset):
    from modeling_vitpain import ViTPainImageProcessor

    with pytest.raises(TypeError, match="from_image_processor"):
        PainTransform(SIZE)
    processor = ViTPainImageProcessor(size=SIZE)
    transform = PainTransform.from_image_processor(processor)
    assert (transform.image_mean, transform.image_std) == (tuple(processor.image_mean), tuple(processor.image_std))
    batch = transform(dataset.with_format(None)[0:2])
    expected = processor(dataset[0:2]["image"], return_tensors="pt")["pixel_values"]
    assert torch.allclose(batch["pixel_values"], expected, atol=1e-6)


def test_the_aligned_crop_reads_unbc_aam_landmarks_where_rows_have_no_landmarks_2d():
    """UNBC rows carry the archive's 66 AAM points (`landmarks_aam`), not `landmarks_2d`: an aligned-crop model
    fine-tuned on them is cut by those, exactly as by the same points given as `landmarks_2d`."""
    from modeling_vitpain import ViTPainImageProcessor

    processor = ViTPainImageProcessor(size=SIZE, face_crop="aligned", image_mean=MEAN, image_std=STD)
    rows = make_rows(2)
    points = [[[4.0 + 0.2 * k, 6.0 + 0.1 * (k % 7)] for k in range(66)] for _ in range(2)]
    for k, (x, y) in {36: (6, 9), 39: (10, 9), 42: (14, 9), 45: (18, 9), 48: (9, 17), 54: (15, 17)}.items():
        for row in points:
            row[k] = [float(x), float(y)]
    transform = PainTransform(SIZE, image_processor=processor, **STATS)
    by_2d = transform({**rows, "landmarks_2d": points})
    by_aam = transform({**{k: v for k, v in rows.items() if k != "landmarks_2d"}, "landmarks_aam": points})
    torch.testing.assert_close(by_aam["pixel_values"], by_2d["pixel_values"])
    assert not torch.equal(by_2d["pixel_values"], transform(make_rows(2) | {"landmarks_2d": [
        [[x + 2, y] for x, y in row] for row in points]})["pixel_values"])  # the landmarks do move the crop
    with pytest.raises(ValueError, match="landmarks_aam"):
        transform(make_rows(2))
