"""Split speed at scale, beside scikit-learn's StratifiedGroupKFold on the same data.

1,000,000 labelled rows in 100,000 uploader groups (6 classes, eMotions-like imbalance).
  ours  `make_splits`: grouping (union-find), the stratified group assignment of `full`, and the
        `balanced` and `test_oriented` variants, timed together; peak memory of this process
  ref   `StratifiedGroupKFold(n_splits=10, shuffle=True)`: the first fold only (a 90/10 cut), which is
        the least it can do for one split
Targets: ours <= 10 s and <= 2 GB.  Run: python benchmarks/split.py [--rows 1000000] [--groups 100000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd

from emotions_data.stratified_split import SplitSettings, make_splits


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


if __name__ == "__main__":
    main()
