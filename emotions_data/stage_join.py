"""The stage logs joined to the input register, column-wise: `aligned` puts a log's rows in the register's order,
and the masks below are numpy bool arrays over those rows (one entry per registered input).

Every step of a run that decides something for all inputs (what each stage has left, the filters, the manifest's
common rows) works on these masks, so a re-run over a million inputs costs Arrow kernels, not Python objects; only
the few rows that need Python become dicts (`rows_where`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def aligned(table: pa.Table, ids: pa.ChunkedArray) -> pa.Table:
    """`table`'s row (a stage log's newest, one per key) for each of `ids`, in their order; all nulls where it has
    none. Arrow's hash lookup, so a million rows cost no Python objects."""
    at = pc.index_in(ids, value_set=table["video_id"].combine_chunks())
    return table.take(at).combine_chunks()


def numpy_of(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as a numpy array (a copy where Arrow cannot share its memory)."""
    return values.to_numpy(zero_copy_only=False)


def equals(values: pa.ChunkedArray, value: str) -> np.ndarray:
    """values == value, null counting as unequal, as a numpy bool mask."""
    return numpy_of(pc.fill_null(pc.equal(values, value), False))


def truthy(values: pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy mask, null counting as False."""
    return numpy_of(pc.fill_null(values, False))


def present(table: pa.Table) -> np.ndarray:
    """Rows of an `aligned` table that the stage log has."""
    return numpy_of(pc.is_valid(table["video_id"]))


def differ(a: pa.ChunkedArray, b: pa.ChunkedArray | str) -> np.ndarray:
    """a != b as Python compares values, None included (None != None is False, None != "x" is True)."""
    if isinstance(b, str):
        return ~equals(a, b)
    both = numpy_of(pc.and_(pc.is_valid(a), pc.is_valid(b)))
    unequal = numpy_of(pc.fill_null(pc.not_equal(a, b), False))
    return np.where(both, unequal, numpy_of(pc.is_valid(a)) != numpy_of(pc.is_valid(b)))


def among(ids: pa.ChunkedArray, keys: dict[str, str] | set[str]) -> np.ndarray:
    """Whether each of `ids` is one of `keys` (a dict: its keys)."""
    if not keys:
        return np.zeros(len(ids), bool)
    return numpy_of(pc.is_in(ids, value_set=pa.array(list(keys), pa.string())))


def rows_where(table: pa.Table, mask: np.ndarray, keep_nulls: bool = False, **more: pa.ChunkedArray) -> list:
    """The masked rows as dicts (`more`: extra columns, aligned with `table`); with `keep_nulls` a row the stage log
    does not have is None. Only for the few rows that need Python: the items of a stage's jobs."""
    if not mask.any():
        return []
    where = pa.array(np.flatnonzero(mask))
    rows = table.take(where).to_pylist()
    extra = {name: col.take(where).to_pylist() for name, col in more.items()}
    for k, row in enumerate(rows):
        row.update({name: values[k] for name, values in extra.items()})
    if keep_nulls:
        return [row if row["video_id"] is not None else None for row in rows]
    return rows
