"""Synthetic video frames for the fingerprint and dedup tests: smooth random pictures and their mild copies."""

from __future__ import annotations

import numpy as np

from emotions_data import fingerprint as fp

_X = np.linspace(0, 3, fp.FRAME_SIZE)
_UPSAMPLE = np.maximum(0.0, 1.0 - np.abs(_X[:, None] - np.arange(4)[None, :]))  # bilinear, 4 -> 32


def smooth_frames(rng, n):
    """(n, 32, 32) uint8 frames with smooth structure: bilinearly upsampled random 4x4 grids."""
    grids = rng.integers(0, 256, (n, 4, 4)).astype(np.float64)
    return np.rint(_UPSAMPLE @ grids @ _UPSAMPLE.T).astype(np.uint8)


def mild_copy(rng, frames, brightness=10.0, noise=3.0):
    """The same frames after a light re-encode: a brightness shift and some noise."""
    out = frames.astype(np.float64) + brightness + rng.normal(0.0, noise, frames.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
