"""The one parquet writer: shards written row group by row group to `<name>.partial` and renamed into place only
when complete, so a crash never leaves a file that looks finished. Generated shards and Hub folders both use it."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_ROW_GROUP = 100  # image rows: small row groups keep the Hub viewer, streaming and random access cheap


class ParquetShardWriter:
    """`with ParquetShardWriter(path, schema) as shard: shard.write(table)`; the file appears at `path` on a clean
    exit and the partial file is removed on an error."""

    def __init__(self, path: str | Path, schema: pa.Schema, row_group_size: int = ROWS_PER_ROW_GROUP):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.row_group_size = row_group_size
        # page checksums: a flipped bit is an error for a reader that verifies them, not another label
        self._writer = pq.ParquetWriter(self.partial, schema, write_page_checksum=True)
        self.bytes_written = 0  # arrow bytes of the rows (image bytes are PNG/JPEG already: about the file size)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self.bytes_written += table.nbytes

    def close(self) -> Path:
        self._writer.close()
        os.replace(self.partial, self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> "ParquetShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_parquet(path: str | Path, rows: list[dict], schema: pa.Schema) -> Path:
    """Write `rows` (dicts of column -> value) as one parquet file, atomically."""
    with ParquetShardWriter(path, schema) as shard:
        shard.write(pa.Table.from_pylist(rows, schema=schema))
    return Path(path)
