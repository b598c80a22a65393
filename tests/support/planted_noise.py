"""Synthetic out-of-fold probabilities with planted label noise, for the suspects' tests and benchmark."""

from __future__ import annotations

import numpy as np


def planted_noise(
    n: int, n_classes: int, noise: float, seed: int = 0, sharpness: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(given labels (n,), probabilities (n, K), flipped (n,) bool): true classes drawn uniformly, a share `noise`
    of the given labels flipped to another class at random; the probabilities are a softmax of logits that favour
    the TRUE class by `sharpness` with unit Gaussian noise, as an imperfect model that learnt the true classes."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n)
    flipped = rng.random(n) < noise
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    logits = rng.normal(0, 1, (n, n_classes))
    logits[np.arange(n), true] += sharpness
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return given, probs / probs.sum(axis=1, keepdims=True), flipped


def precision_recall(flagged: np.ndarray, flipped: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the flagged items (bool (n,)) against the flipped ones."""
    hits = int((flagged & flipped).sum())
    return hits / max(int(flagged.sum()), 1), hits / max(int(flipped.sum()), 1)
