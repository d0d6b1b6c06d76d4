"""A `datasets` builder for 3DPain data, usable from the package (datasets 5.x runs no loading scripts).

    from dataset_builder.builder import Pain3D

    builder = Pain3D(config_name="generated", data_dir="out/")          # a `pain3d generate` folder
    builder = Pain3D(config_name="official", data_dir="3D-Pain/",        # the published 3D-Pain layout
                     split_csv="uniform_data_70_20_10_split.csv")
    builder.download_and_prepare()
    dataset_dict = builder.as_dataset()

Both configs give the columns of `features.pain_features` (official-layout columns it lacks are None) and the
splits train / validation / test. `download_and_prepare` writes arrow files to the datasets cache (images embedded,
so the cache does not depend on the source folder staying where it is); `as_dataset` memory-maps them.
`datasets.load_dataset(folder)` reads a generated folder the same way without this class; for the official layout,
`load_official_layout(root)` skips the copy (images stay referenced by path, only the index is cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import datasets
import pyarrow.parquet as pq

from generation.columns import SPLITS, pain_features
from .integrity import check_labels
from .official import load_official_layout

_DESCRIPTION = (
    "3DPain: synthetic pain faces with paired neutral references, FACS action units (AU4, AU6, AU7, AU9, AU10, "
    "AU43), PSPI scores, pain-region heatmaps (mm), camera views and the demographic attributes each synthetic "
    "identity was generated for."
)
_CITATION = """@article{lin2025pain,
  title={Pain in 3D: Generating Controllable Synthetic Faces for Automated Pain Assessment},
  author={Lin, Xin Lei and Mehraban, Soroush and Moturu, Abhishek and Taati, Babak},
  journal={arXiv preprint arXiv:2509.16727},
  year={2025}
}"""
LAYOUTS = ("generated", "official")


@dataclass
class Pain3DConfig(datasets.BuilderConfig):
    """`layout` "generated" (parquet shards under data_dir/data) or "official" (3D-Pain images + JSON in data_dir).
    Official layout only: `split_csv` (annotation_base_name,split), `view_names`, `include_neutral_rows`."""

    layout: str = "generated"
    split_csv: str | None = None
    view_names: Sequence[str] | None = None
    include_neutral_rows: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")


class Pain3D(datasets.GeneratorBasedBuilder):
    """Builds 3DPain splits from a generated folder or from the official 3D-Pain layout (see the module docstring)."""

    BUILDER_CONFIG_CLASS = Pain3DConfig
    BUILDER_CONFIGS = [
        Pain3DConfig(name="generated", layout="generated", version=datasets.Version("1.0.0"),
                     description="a folder written by `pain3d generate` (data/<split>-*.parquet)"),
        Pain3DConfig(name="official", layout="official", version=datasets.Version("1.0.0"),
                     description="the published 3D-Pain layout (flame_sample_XXXX_* images, JSON annotations)"),
    ]
    DEFAULT_CONFIG_NAME = "generated"
    DEFAULT_WRITER_BATCH_SIZE = 100  # rows hold images: keep arrow record batches small

    def _data_dir(self) -> Path:
        if not self.config.data_dir:
            raise ValueError(
                f"Pain3D(config_name={self.config.name!r}) needs data_dir: the "
                + ("generated dataset folder" if self.config.layout == "generated" else "3D-Pain folder")
            )
        data_dir = Path(self.config.data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data_dir {data_dir} does not exist")
        return data_dir

    def _shards(self, split: str) -> list[Path]:
        return sorted((self._data_dir() / "data").glob(f"{split}-*.parquet"))

    def _official(self) -> datasets.DatasetDict:
        return load_official_layout(
            self._data_dir(), self.config.split_csv, view_names=self.config.view_names,
            include_neutral_rows=self.config.include_neutral_rows,
        )

    def _info(self) -> datasets.DatasetInfo:
        if self.config.layout == "generated":
            shards = [shard for split in SPLITS for shard in self._shards(split)]
            if not shards:
                raise FileNotFoundError(
                    f"no parquet shards under {self._data_dir() / 'data'}: expected "
                    f"data/<split>-NNNNN-of-MMMMM.parquet as `pain3d generate` writes (for the official 3D-Pain layout use config_name='official')"
                )
            # The shards carry their Features (view names, extended AUs) in their schema metadata.
            features = datasets.Features.from_arrow_schema(pq.read_schema(shards[0]))
        else:
            features = self._official()["train"].features if self.config.data_dir else pain_features()
        return datasets.DatasetInfo(description=_DESCRIPTION, citation=_CITATION, features=features,
                                    homepage="https://arxiv.org/abs/2509.16727", license="mit")

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        if self.config.layout == "generated":
            return [
                datasets.SplitGenerator(name=split, gen_kwargs={"shards": self._shards(split)})
                for split in SPLITS
            ]
        official = self._official()
        return [datasets.SplitGenerator(name=split, gen_kwargs={"rows": official[split]}) for split in SPLITS]

    def _generate_examples(self, shards: list[Path] | None = None, rows: datasets.Dataset | None = None) -> Iterator:
        if shards is not None:
            for shard in shards:
                for batch in pq.ParquetFile(shard).iter_batches(batch_size=256):
                    rows = batch.to_pylist()
                    check_labels([row["pspi"] for row in rows], [row["action_units"] for row in rows],
                                 [row["sample_id"] for row in rows], where=shard.name)
                    yield from ((row["sample_id"], row) for row in rows)
            return
        # Official layout: embed the image bytes so the prepared cache stands alone.
        undecoded = rows.cast_column("image", datasets.Image(decode=False)).cast_column(
            "neutral_image", datasets.Image(decode=False)
        ).cast_column("heatmap", datasets.Image(decode=False))
        for row in undecoded:
            for column in ("image", "neutral_image"):
                if row[column] is not None and row[column]["bytes"] is None:
                    row[column] = {"bytes": Path(row[column]["path"]).read_bytes(), "path": None}
            yield row["sample_id"], row
