"""Perceptual fingerprints (emotions_data.fingerprint) of synthetic frames."""

from __future__ import annotations

import re

import numpy as np
import pytest

from emotions_data import fingerprint as fp
from emotions_data.settings import DedupSettings
from tests.support.frames import mild_copy, smooth_frames


def test_fingerprint_format_and_roundtrip_is_bit_exact():
    frames = smooth_frames(np.random.default_rng(1), 40)
    fingerprint = fp.fingerprint_frames(frames)
    assert re.fullmatch(r"p2:[0-9a-f]{296}", fingerprint)
    bits = fp.decode(fingerprint)
    assert bits.shape == (fp.N_FRAMES, fp.BITS_PER_FRAME) and bits.dtype == bool
    expected = fp.frame_bits(frames[fp.sample_indices(len(frames))])
    np.testing.assert_array_equal(bits, expected)
    assert 0 < bits.sum() < bits.size


def test_fingerprint_is_deterministic():
    frames = smooth_frames(np.random.default_rng(2), 20)
    assert fp.fingerprint_frames(frames) == fp.fingerprint_frames(frames.copy())


def test_distance_identical_is_zero():
    fingerprint = fp.fingerprint_frames(smooth_frames(np.random.default_rng(3), 30))
    assert fp.distance(fingerprint, fingerprint) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_distance_of_independent_clips_is_about_half(seed):
    rng = np.random.default_rng(seed)
    a = fp.fingerprint_frames(smooth_frames(rng, 40))
    b = fp.fingerprint_frames(smooth_frames(rng, 40))
    assert 0.35 < fp.distance(a, b) < 0.65
    assert fp.distance(a, b) == fp.distance(b, a)


@pytest.mark.parametrize("seed", range(6))
def test_distance_of_mild_copy_is_small(seed):
    rng = np.random.default_rng(100 + seed)
    frames = smooth_frames(rng, 40)
    a = fp.fingerprint_frames(frames)
    b = fp.fingerprint_frames(mild_copy(rng, frames))
    assert fp.distance(a, b) < 0.12
    assert fp.distance(a, b) < DedupSettings().near_duplicate_threshold


def test_fingerprint_of_one_frame():
    frame = smooth_frames(np.random.default_rng(4), 1)
    bits = fp.decode(fp.fingerprint_frames(frame))
    assert bits.shape == (fp.N_FRAMES, fp.BITS_PER_FRAME)
    assert (bits == bits[0]).all()  # the single frame repeated
    np.testing.assert_array_equal(bits[0], fp.frame_bits(frame)[0])


def test_fingerprint_of_many_frames_samples_evenly():
    frames = smooth_frames(np.random.default_rng(5), 500)
    indices = fp.sample_indices(len(frames))
    assert indices[0] == 0 and indices[-1] == 499 and len(indices) == fp.N_FRAMES
    assert (np.diff(indices) > 0).all()
    assert fp.fingerprint_frames(frames) == fp.fingerprint_frames(frames[indices])


def test_fingerprint_of_no_frames_is_an_error():
    with pytest.raises(ValueError):
        fp.fingerprint_frames(np.zeros((0, 32, 32), np.uint8))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "p1",
        "p1:",
        "0" * 256,
        "p2:" + "0" * 256,
        "P1:" + "0" * 256,
        "p1:" + "0" * 255,
        "p1:" + "0" * 257,
        "p1:" + "0" * 512,
        "p1:" + "g" * 256,
        "p1:" + "0" * 254 + "  ",
        "p1:" + "é" * 256,
    ],
)
def test_decode_rejects_malformed(bad):
    with pytest.raises(ValueError):
        fp.decode(bad)
