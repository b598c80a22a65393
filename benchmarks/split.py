"""Split speed at scale, beside scikit-learn's StratifiedGroupKFold on the same data.

1,000,000 labelled rows in 100,000 uploader groups (6 classes, eMotions-like imbalance).
  ours  `make_splits`: grouping (union-find), the stratified group assignment of `full`, and the
        `balanced` and `test_oriented` variants, timed together; peak memory of this process
  ref   `StratifiedGroupKFold(n_splits=10, shuffle=True)`: the first fold only (a 90/10 cut), which is
        the least it can do for one split
  near  with --near-duplicates: the rows also get random `p2` fingerprints and durations (one near copy per
        100 rows), and the leakage groups' near-duplicate edges (`split_step.with_near_duplicate_edges`, the indexed
        search `emotions split` runs) are timed on their own
Targets: ours <= 10 s and <= 2 GB.  Run: python benchmarks/split.py [--rows 1000000] [--groups 100000]
                                          [--near-duplicates]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from emotions_data import fingerprint as fp
from emotions_data.split_step import with_near_duplicate_edges
from emotions_data.stratified_split import SplitSettings, make_splits


def with_fingerprints(items: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """`items` with random `p2` fingerprints and durations; every 100th row a copy of an earlier one."""
    rng = np.random.default_rng(seed)
    n = len(items)
    picture = rng.integers(0, 2**fp.BITS_PER_FRAME, (n, fp.N_FRAMES), dtype=np.uint64)
    sound = rng.integers(0, 2**fp.BITS_PER_SEGMENT, (n, fp.N_SEGMENTS), dtype=np.uint64)
    durations = np.exp(rng.normal(np.log(15.0), 0.6, n)) + 1.0
    copies = np.arange(100, n, 100)
    picture[copies], sound[copies], durations[copies] = picture[copies - 50], sound[copies - 50], durations[copies - 50]
    ones = np.ones((n, fp.N_FRAMES), bool)
    decoded = fp.Decoded(picture, ones, sound, ones.copy(), np.full(n, 2, np.int8))
    return items.assign(fingerprint=fp.encode_many(decoded), media_duration_s=durations)


def data(rows: int, groups: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(["Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"], rows,
                        p=[0.25, 0.1, 0.2, 0.2, 0.15, 0.1])  # fmt: skip
    return pd.DataFrame(
        {
            "video_id": np.arange(rows).astype(str),
            "label": labels,
            "uploader": rng.integers(0, groups, rows).astype(str),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--near-duplicates", action="store_true", help="time the near-duplicate edges too")
    args = parser.parse_args()
    items = data(args.rows, args.groups)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start = time.perf_counter()
    result = make_splits(items, SplitSettings())
    ours = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from sklearn.model_selection import StratifiedGroupKFold

    start = time.perf_counter()
    fold = StratifiedGroupKFold(n_splits=10, shuffle=True, random_state=0)
    next(fold.split(np.zeros(len(items)), items["label"], items["uploader"]))
    ref = time.perf_counter() - start

    deviation = result.deviation.query("variant == 'full'")["deviation"].abs().max()
    print(f"{args.rows:,} rows, {args.groups:,} groups")
    print(f"ours, 3 variants (full 80/10/10)        : {ours:6.2f} s  (target <= 10 s)")
    print(
        f"peak memory of the process               : {peak:6.0f} MB (before the split: {before:.0f} MB; target <= 2048)"
    )
    print(f"largest per-class deviation (full)       : {deviation:.5f}")
    print(f"sklearn StratifiedGroupKFold, one fold   : {ref:6.2f} s")
    print(f"ratio ours / sklearn                     = {ours / ref:.2f}")
    if args.near_duplicates:
        items = with_fingerprints(items)
        start = time.perf_counter()
        edges = with_near_duplicate_edges(items).attrs["near_dup_edges"]
        near = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"near-duplicate edges (indexed search)    : {near:6.2f} s, {len(edges):,} edges (planted "
              f"{(args.rows - 1) // 100:,}); peak memory now {peak:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
