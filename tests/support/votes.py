"""Simulated votes: five annotators of unequal accuracy label random items of the eMotions taxonomy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emotions_data.taxonomy import EMOTIONS6


def simulated(seed: int, items: int = 2000, accuracies=(0.9, 0.85, 0.35, 0.3, 0.3)) -> tuple[pd.DataFrame, dict]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, items)
    rows = []
    for a, acc in enumerate(accuracies):
        given = np.where(rng.random(items) < acc, truth, rng.integers(0, 6, items))
        rows += [(f"v{i:05d}", f"ann{a}", EMOTIONS6.classes[g]) for i, g in enumerate(given)]
    frame = pd.DataFrame(rows, columns=["video_id", "annotator_id", "label"])
    return frame, {f"v{i:05d}": EMOTIONS6.classes[t] for i, t in enumerate(truth)}
