"""How image columns are stored (`generation.columns.encode_image` / `encode_png`, `--image-format`): the lossless
forms give back every bit through `datasets`, the lossy ones are smaller and close, heatmaps stay the same PNG
whatever the images are, and a bad form is one error before anything is written."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generation.columns import IMAGE_FORMAT_FORMS, encode_image, encode_png
from generation.config import GenerationConfig
from generation.errors import ConfigError

FORMATS = ("webp-lossless", "png", "jpeg:90", "webp:90")


@pytest.fixture(scope="module")
def datasets_by_format(tmp_path_factory, face_model_file):
    """The same tiny dataset (2 identities x 2 expressions x 3 views, 64 px) written in each image format, read back
    through `datasets` (so its Image feature decodes the bytes): format -> rows sorted by sample_id."""
    from datasets import load_dataset

    from generation.writer import generate_dataset

    out = {}
    for image_format in FORMATS:
        folder = tmp_path_factory.mktemp("encoding") / image_format.replace(":", "-")
        config = GenerationConfig(num_identities=2, expressions_per_identity=1, image_size=64, seed=3,
                                  image_format=image_format)
        generate_dataset(folder, config, face_model_file, progress=False)
        rows = load_dataset("parquet", data_files=str(folder / "data" / "*.parquet"), split="train",
                            cache_dir=str(folder.parent / "hf"))
        out[image_format] = sorted(rows, key=lambda row: row["sample_id"])
    return out


def _pixels(image) -> np.ndarray:
    return np.asarray(image)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_lossless_forms_give_back_every_pixel_through_datasets(datasets_by_format):
    webp, png = datasets_by_format["webp-lossless"], datasets_by_format["png"]
    assert len(webp) == len(png) == 2 * 2 * 3
    for a, b in zip(webp, png):
        assert a["sample_id"] == b["sample_id"]
        assert a["image"].format == "WEBP" and b["image"].format == "PNG"
        assert a["neutral_image"].format == "WEBP" and a["heatmap"].format == "PNG"
        for column in ("image", "neutral_image"):
            assert a[column].mode == b[column].mode == "RGB"
            assert np.array_equal(_pixels(a[column]), _pixels(b[column])), (a["sample_id"], column)
        assert np.array_equal(_pixels(a["heatmap"]), _pixels(b["heatmap"]))  # heatmaps never depend on the format
        assert _pixels(a["heatmap"]).dtype == np.uint16


@pytest.mark.parametrize("image_format, magic", [("jpeg:90", "JPEG"), ("webp:90", "WEBP")])
def test_lossy_forms_are_smaller_and_close(datasets_by_format, image_format, magic):
    lossy, exact = datasets_by_format[image_format], datasets_by_format["png"]
    for a, b in zip(lossy, exact):
        assert a["image"].format == a["neutral_image"].format == magic
        image, reference = _pixels(a["image"]), _pixels(b["image"])
        assert image.shape == reference.shape and not np.array_equal(image, reference)  # lossy indeed
        assert _psnr(image, reference) > 30.0, a["sample_id"]
        assert np.array_equal(_pixels(a["heatmap"]), _pixels(b["heatmap"]))  # heatmaps stay lossless


def test_encoded_sizes_order_as_measured():
    """On a noisy RGB image (renders have a textured background): webp-lossless < png, lossy far below both."""
    rng = np.random.default_rng(0)
    smooth = np.linspace(0, 200, 96 * 96 * 3).reshape(96, 96, 3)
    array = np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
    sizes = {fmt: len(encode_image(array, fmt, 1)) for fmt in FORMATS}
    assert sizes["webp-lossless"] < sizes["png"]
    assert max(sizes["jpeg:90"], sizes["webp:90"]) < sizes["webp-lossless"] / 2
    decoded = np.asarray(Image.open(io.BytesIO(encode_image(array, "webp-lossless", 1))))
    assert np.array_equal(decoded, array)


@pytest.mark.parametrize("array", [
    np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8),  # RGB (image, normals)
    (np.arange(64 * 64).reshape(64, 64) % 20).astype(np.uint8),  # grey (segmentation)
    (np.arange(64 * 64).reshape(64, 64) * 13).astype(np.uint16),  # 16-bit (heatmap, depth)
], ids=["rgb", "grey", "16-bit"])
def test_png_columns_are_lossless_and_any_level_gives_the_same_bytes(array):
    data = encode_png(array, 1)
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG" and np.array_equal(np.asarray(back), array)
    assert encode_png(array, 9) == data  # zlib's run-length strategy ignores the level
    assert len(encode_png(array, 0)) > len(data)  # 0 stores uncompressed


@pytest.mark.parametrize("bad", ["gif", "PNG", "webp", "jpeg", "webp:0", "jpeg:101", "jpeg:9.5", "webp-lossless:90"])
def test_a_bad_image_format_is_one_error_naming_the_valid_forms_before_anything_is_written(bad, tmp_path):
    with pytest.raises(ConfigError, match="--image-format must be") as error:
        GenerationConfig(num_identities=2, image_format=bad)
    assert IMAGE_FORMAT_FORMS in str(error.value) and repr(bad) in str(error.value)

    from pain3d.cli import main

    output = tmp_path / "out"
    assert main(["generate", "-o", str(output), "--num-identities", "2", "--image-format", bad, "--quiet"]) == 2
    assert not output.exists()


def test_records_from_before_the_field_read_as_png_and_new_ones_keep_theirs():
    config = GenerationConfig(num_identities=2, image_format="jpeg:85")
    assert GenerationConfig.from_dict(config.to_dict()).image_format == "jpeg:85"
    old = config.to_dict()
    del old["image_format"]
    assert GenerationConfig.from_dict(old).image_format == "png"  # its images were PNG: a resume keeps them so
    assert GenerationConfig(num_identities=2).image_format == "webp-lossless"
