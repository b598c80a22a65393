"""The one rule that names the winner of a vote count: the unique plurality, else a tie.

A tie is never broken silently (not by label order, not at random): a tied item has no winner, and the caller
decides what that means (no majority label, a place in the expert's queue, an item left out of a comparison).
"""

from __future__ import annotations

import numpy as np

TIE = -1  # `unique_plurality`'s answer for a row without a unique winner


def unique_plurality(counts: np.ndarray) -> np.ndarray:
    """The winner of each row of an (items, labels) count matrix: the column index of the row's largest count when
    no other column has that count, else TIE (-1). An all-zero row is a tie unless it has a single column.

    Returns an int64 array of shape (items,). Raises ValueError for a matrix with rows but no columns."""
    counts = np.asarray(counts)
    if len(counts) == 0:
        return np.empty(0, dtype=np.int64)
    top = counts.max(axis=1)
    unique = (counts == top[:, None]).sum(axis=1) == 1
    return np.where(unique, counts.argmax(axis=1), TIE).astype(np.int64)
