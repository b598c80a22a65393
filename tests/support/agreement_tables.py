"""Random vote tables for the agreement tests: every shape the report handles (missing votes, varying votes per
item, one annotator only on some items, integer-looking ids)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers (rows) x 12 units (columns), values
# 1-5, NaN where an observer gave none. Gwet's Handbook and his irrCAC functions use the same table (raw_4raters).
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)

LABELS = ["Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"]


def random_table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = int(rng.integers(5, 400))
    annotators = int(rng.integers(2, 12))
    n_labels = int(rng.integers(2, 7))
    truth = rng.integers(0, n_labels, items)
    accuracy = rng.uniform(0.2, 0.95, annotators)
    rows = []
    for u in range(items):
        k = int(rng.integers(1, min(annotators, 6) + 1)) if seed % 3 else min(annotators, 4)  # every 3rd: fixed
        for a in rng.choice(annotators, k, replace=False):
            label = truth[u] if rng.random() < accuracy[a] else rng.integers(0, n_labels)
            rows.append((f"v{u:04d}" if seed % 2 else str(u), f"a{a}", LABELS[label]))
    return pd.DataFrame(rows, columns=["video_id", "annotator_id", "label"])


SEEDS = list(range(12))
