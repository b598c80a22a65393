"""The toolkit's own release format: one Parquet file per variant and split, `data/<variant>/<split>.parquet`
(`RELEASE_SCHEMA`, docs/reference/release-format.md), the files `release.json` lists and the card and the baseline
read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.layout import ReleaseLayout
from emotions_data.schema import RELEASE_SCHEMA, Split
from emotions_data.taxonomy import Taxonomy


def release_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as a `RELEASE_SCHEMA` table: its columns in schema order, a missing column all null."""
    columns = {}
    for field in RELEASE_SCHEMA:
        values = frame[field.name] if field.name in frame.columns else pd.Series([None] * len(frame))
        values = values.astype(object).where(values.notna(), None) if field.name != "votes" else values
        columns[field.name] = pa.array(values.tolist(), type=field.type)
    return pa.Table.from_pydict(columns, schema=RELEASE_SCHEMA)


def read_split(release_dir: Path, variant: str, split: str) -> pd.DataFrame:
    """The rows of one split of a release, `data/<variant>/<split>.parquet`. Raises ValueError naming the file
    when the release has no such split."""
    path = ReleaseLayout(Path(release_dir)).data_file(variant, split)
    if not path.is_file():
        raise ValueError(f"{path}: no such split in the release (variant {variant!r}, split {split!r})")
    return pd.read_parquet(path)


@dataclass(frozen=True)
class ParquetFormat:
    """`data/<variant>/<split>.parquet`, one file per split of every variant, rows sorted by video_id."""

    name: str = "parquet"

    def write(self, release: ReleaseLayout, variant: str, rows: pd.DataFrame, taxonomy: Taxonomy) -> list[Path]:
        """Write the variant's `rows` (release rows with a `split` column), one file per split, an empty split
        included. Returns the files written, in `Split` order."""
        written = []
        for split in Split:
            path = release.data_file(variant, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(release_table(rows[rows["split"] == split].sort_values("video_id")), path)
            written.append(path)
        return written

    def read(self, release: ReleaseLayout, variant: str, taxonomy: Taxonomy) -> pd.DataFrame:
        """Every split of the variant, in `Split` order, with a `split` column (the files hold one split each).
        Raises ValueError naming a missing file."""
        parts = [read_split(release.root, variant, split).assign(split=str(split)) for split in Split]
        return pd.concat(parts, ignore_index=True)
