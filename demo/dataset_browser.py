"""The "Browse a dataset" engine: filter the rows of a generated 3DPain folder by split, PSPI and demographics, and
show neutral / pain / heatmap with the row's labels. Reads the parquet shards; image bytes only for shown rows.

`DatasetFolders` is what the demo may open: the dataset it was started with, or folders under one root named at start,
never any other folder of the server (every path the page or the API sends is checked here, on the server)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from generation.columns import HEATMAP_UNITS_PER_MM, SPLITS
from generation.columns import colorize_heatmap
from generation.demographics import AGE_GROUP_NAMES, ETHNICITIES, GENDERS
from generation.facs import PSPI_MAX

from dataset_builder.integrity import check_labels
from generation.errors import Pain3DError

LABEL_COLUMNS = (
    "sample_id", "identity_id", "expression_index", "view", "yaw", "pitch", "action_units", "pspi",
    "age", "age_group", "gender", "ethnicity",
)  # fmt: skip
CLASS_COLUMNS = ("view", "age_group", "gender", "ethnicity")
ANY = "any"


class DatasetFolderError(Pain3DError, ValueError):
    """A folder that is not a generated 3DPain dataset."""


@dataclass
class RowRef:
    split: str
    shard: Path
    sample_id: str


class DatasetBrowser:
    def __init__(self, folder: str | Path):
        folder = Path(folder).expanduser()
        shards = sorted((folder / "data").glob("*.parquet"))
        if not shards:
            raise DatasetFolderError(
                f"{folder} holds no data/<split>-NNNNN-of-MMMMM.parquet shards: give a folder written by "
                "`pain3d generate --output DIR`."
            )
        import datasets

        self.folder = folder
        self.features = datasets.Features.from_arrow_schema(pq.read_schema(shards[0]))
        self.names = {column: self.features[column].names for column in CLASS_COLUMNS if column in self.features}
        self.rows: list[dict] = []
        self.refs: list[RowRef] = []
        for shard in shards:
            split = shard.name.split("-", 1)[0]
            schema = pq.read_schema(shard)
            table = pq.read_table(shard, columns=[c for c in LABEL_COLUMNS if c in schema.names])
            rows = table.to_pylist()
            check_labels([row["pspi"] for row in rows], [row["action_units"] for row in rows],
                         [row["sample_id"] for row in rows], where=shard.name)
            for row in rows:
                for column, names in self.names.items():
                    if row.get(column) is not None:
                        row[column] = names[row[column]]
                row["split"] = split
                self.rows.append(row)
                self.refs.append(RowRef(split, shard, row["sample_id"]))

    @property
    def splits(self) -> list[str]:
        present = {row["split"] for row in self.rows}
        return [split for split in SPLITS if split in present] + sorted(present - set(SPLITS))

    def choices(self, column: str) -> list[str]:
        return [ANY, *self.names.get(column, [])]

    def summary(self) -> str:
        identities = len({row["identity_id"] for row in self.rows})
        per_split = ", ".join(f"{split} {sum(r['split'] == split for r in self.rows)}" for split in self.splits)
        return f"`{self.folder}`: {len(self.rows)} rows of {identities} identities ({per_split})."

    def filter(
        self, split: str = ANY, pspi_min: float = 0, pspi_max: float = 16, age_group: str = ANY,
        gender: str = ANY, ethnicity: str = ANY, view: str = ANY,
    ) -> list[int]:
        """Indices of the rows that pass every filter (`any` passes all). Each filter is checked: DatasetFolderError
        names a value that is not one of the choices (or a PSPI bound that is not a number within 0-PSPI_MAX)."""
        for name, value in (("PSPI from", pspi_min), ("PSPI to", pspi_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and 0 <= value <= PSPI_MAX):
                raise DatasetFolderError(f"{name} must be a number within 0-{PSPI_MAX}, got {value!r}")
        for name, value, choices in (
            ("split", split, [ANY, *self.splits]), ("age group", age_group, [ANY, *AGE_GROUP_NAMES]),
            ("gender", gender, [ANY, *GENDERS]), ("ethnicity", ethnicity, [ANY, *ETHNICITIES]),
            ("view", view, self.choices("view")),
        ):
            if value not in choices:
                raise DatasetFolderError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
        wanted = {"split": split, "age_group": age_group, "gender": gender, "ethnicity": ethnicity, "view": view}
        return [
            index
            for index, row in enumerate(self.rows)
            if pspi_min <= row["pspi"] <= pspi_max
            and all(value in (None, ANY) or row.get(column) == value for column, value in wanted.items())
        ]

    def row_index(self, index) -> int:
        """`index` checked to be a row number of this dataset (DatasetFolderError otherwise)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.rows):
            raise DatasetFolderError(f"row {index!r} is not a row of {self.folder} (0-{len(self.rows) - 1})")
        return index

    def images(self, index: int) -> tuple[Image.Image, Image.Image, np.ndarray]:
        """Neutral image, image and heatmap (mm, float32) of row `index`."""
        ref = self.refs[self.row_index(index)]
        table = pq.read_table(
            ref.shard, columns=["image", "neutral_image", "heatmap"], filters=pc.field("sample_id") == ref.sample_id
        )
        cells = table.to_pylist()[0]

        def decode(cell):
            return Image.open(io.BytesIO(cell["bytes"]))

        heatmap = np.asarray(decode(cells["heatmap"]), dtype=np.float32) / HEATMAP_UNITS_PER_MM
        return decode(cells["neutral_image"]).convert("RGB"), decode(cells["image"]).convert("RGB"), heatmap

    def tile(self, index: int) -> Image.Image:
        """A square tile: neutral | pain over heatmap (fixed scale) | the row's PSPI and AUs."""
        from PIL import ImageDraw, ImageFont

        neutral, pain, heatmap = self.images(index)
        size = pain.width
        heat = Image.fromarray(colorize_heatmap(heatmap)).resize(pain.size)
        out = Image.new("RGB", (2 * size + 4, 2 * size + 4), (255, 255, 255))
        for k, panel in enumerate((neutral.resize(pain.size), pain, heat)):
            out.paste(panel, ((k % 2) * (size + 4), (k // 2) * (size + 4)))
        row = self.rows[index]
        draw = ImageDraw.Draw(out)
        try:
            big, small = ImageFont.load_default(size=max(12, size // 6)), ImageFont.load_default(size=max(9, size // 10))
        except TypeError:  # Pillow without FreeType
            big = small = ImageFont.load_default()
        x, y = size + 4 + size // 12, size + 4 + size // 14
        draw.text((x, y), f"PSPI {row['pspi']:g}", fill=(20, 20, 20), font=big)
        y += size // 4
        active = [f"{name} {value:g}" for name, value in row["action_units"].items() if value]
        for line in [", ".join(active[i : i + 2]) for i in range(0, len(active), 2)] or ["neutral"]:
            draw.text((x, y), line, fill=(60, 60, 60), font=small)
            y += size // 9
        y += size // 20
        for line in (f"{row['age']} y, {row['gender']}", row["ethnicity"]):
            draw.text((x, y), line, fill=(110, 110, 110), font=small)
            y += size // 9
        return out

    def caption(self, index: int) -> str:
        row = self.rows[index]
        return f"{row['identity_id']} {row['view']} ({row['split']})"

    def labels(self, index: int) -> dict:
        row = dict(self.rows[self.row_index(index)])
        row["action_units"] = {name: value for name, value in row["action_units"].items()}
        return row


MAX_PATH_CHARS = 4096


class DatasetFolders:
    """The dataset folders the demo may open: `dataset` (the one it was started with) and, when `root` is given, any
    dataset folder under `root`. `open(path)` gives the folder's DatasetBrowser (each read once) or raises
    DatasetFolderError for anything else, before the path is touched."""

    def __init__(self, dataset: str | Path | None = None, root: str | Path | None = None):
        self.dataset = Path(dataset).expanduser().resolve() if dataset else None
        self.root = Path(root).expanduser().resolve() if root else None
        self._browsers: dict[Path, DatasetBrowser] = {}

    def allowed(self, path) -> Path:
        """`path` resolved, if the demo may open it; DatasetFolderError otherwise (names what may be opened)."""
        if not isinstance(path, str) or not path or len(path) > MAX_PATH_CHARS or "\0" in path:
            raise DatasetFolderError(f"the dataset folder must be a path (text), got {str(path)[:80]!r}")
        folder = Path(path).expanduser()
        if self.root is not None and not folder.is_absolute():
            folder = self.root / folder
        folder = folder.resolve()
        if folder == self.dataset or (self.root is not None and folder.is_relative_to(self.root)):
            return folder
        where = [f"`{self.dataset}`"] if self.dataset else []
        where += [f"folders under `{self.root}`"] if self.root else []
        raise DatasetFolderError(
            f"this demo serves only {' and '.join(where) or 'no dataset'}; start it with --dataset DIR, or "
            "--dataset-root DIR to browse the folders under DIR"
        )

    def open(self, path) -> DatasetBrowser:
        folder = self.allowed(path)
        if folder not in self._browsers:
            self._browsers[folder] = DatasetBrowser(folder)
        return self._browsers[folder]
