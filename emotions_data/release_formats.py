"""The plug-in point of release formats: the contract a format keeps and the registry `write_release` writes.

A format is a writer and a reader of one layout of a release variant's labels and splits, named once. The
toolkit's own Parquet files (`emotions_data.parquet_format`) and the eMotions authors' layout
(`emotions_data.official_format`) are registered; another layout (say a CSV for a spreadsheet) is one more class
with `name`, `write` and `read`, passed to `register_format`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd

from emotions_data.layout import ReleaseLayout
from emotions_data.official_format import OfficialFormat
from emotions_data.parquet_format import ParquetFormat
from emotions_data.taxonomy import Taxonomy


class ReleaseFormat(Protocol):
    """One layout of a release variant. `write` puts a variant's rows (release rows with `video_id`, `label` and
    `split` columns, every split of the variant) into the release folder and returns the files it wrote; `read`
    gives back at least `video_id`, `label` and `split` of what `write` wrote. Both raise ValueError naming the
    file on bad input."""

    @property
    def name(self) -> str: ...

    def write(self, release: ReleaseLayout, variant: str, rows: pd.DataFrame, taxonomy: Taxonomy) -> list[Path]: ...

    def read(self, release: ReleaseLayout, variant: str, taxonomy: Taxonomy) -> pd.DataFrame: ...


#: The formats every release is written in, in writing order: name -> format.
FORMATS: dict[str, ReleaseFormat] = {f.name: f for f in (ParquetFormat(), OfficialFormat())}


def register_format(fmt: ReleaseFormat) -> None:
    """Add `fmt` to the formats releases are written in. Raises ValueError when its name is taken."""
    if fmt.name in FORMATS:
        raise ValueError(f"release format {fmt.name!r} is registered already")
    FORMATS[fmt.name] = fmt


def release_format(name: str) -> ReleaseFormat:
    """The registered format called `name`. Raises ValueError naming the registered ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f"no release format {name!r} (registered: {', '.join(FORMATS)})")
    return FORMATS[name]
