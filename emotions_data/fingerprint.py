"""Perceptual video fingerprints: a DCT hash of each of a fixed number of frames sampled evenly
over the clip. Re-encoding, rescaling, light crops and small watermarks move few bits; different
clips differ in about half of them.

Format (version ``p1``): `N_FRAMES` frames, each reduced to `FRAME_SIZE`² grey pixels (area
averaging), 2-D DCT-II, the `DCT_BAND`² lowest frequencies without the DC term thresholded at
their median: 35 bits per frame, stored as 16 hex digits per frame after the ``p1:`` prefix.
"""

from __future__ import annotations

import numpy as np

VERSION = "p1"
N_FRAMES = 16
FRAME_SIZE = 32
DCT_BAND = 6
BITS_PER_FRAME = DCT_BAND * DCT_BAND - 1


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(FRAME_SIZE)[:DCT_BAND]


def sample_indices(n_available: int, n: int = N_FRAMES) -> np.ndarray:
    return np.linspace(0, n_available - 1, n).round().astype(int)


def frame_bits(frames: np.ndarray) -> np.ndarray:
    """(n, FRAME_SIZE, FRAME_SIZE) grey frames -> (n, BITS_PER_FRAME) booleans."""
    coeffs = _DCT @ frames.astype(np.float64) @ _DCT.T  # low band of the 2-D DCT only
    flat = coeffs.reshape(len(frames), -1)[:, 1:]
    return flat > np.median(flat, axis=1, keepdims=True)


def fingerprint_frames(frames: np.ndarray) -> str:
    """Fingerprint of a clip from its decoded grey thumbnails (at least one frame)."""
    if len(frames) == 0:
        raise ValueError("no frames to fingerprint")
    bits = frame_bits(frames[sample_indices(len(frames))])
    words = np.packbits(bits, axis=1, bitorder="big")  # 5 bytes per frame
    return VERSION + ":" + "".join(row.tobytes().hex().ljust(16, "0") for row in words)


def decode(fingerprint: str) -> np.ndarray:
    """Fingerprint string -> (N_FRAMES, BITS_PER_FRAME) booleans."""
    version, _, body = fingerprint.partition(":")
    if version != VERSION or len(body) != 16 * N_FRAMES:
        raise ValueError(f"not a {VERSION} fingerprint: {fingerprint[:20]}...")
    raw = np.frombuffer(bytes.fromhex(body), dtype=np.uint8).reshape(N_FRAMES, 8)[:, :5]
    return np.unpackbits(raw, axis=1, bitorder="big")[:, :BITS_PER_FRAME].astype(bool)


def distance(a: str, b: str) -> float:
    """Normalised Hamming distance in [0, 1]; ~0.5 for unrelated clips."""
    return float(np.mean(decode(a) != decode(b)))
