"""Exact and near-duplicate detection (emotions_data.dedup)."""

from __future__ import annotations

import numpy as np
import pytest

from emotions_data import fingerprint as fp
from emotions_data.dedup import Candidate, exact_duplicates, near_duplicates
from emotions_data.settings import DedupSettings
from tests.support.frames import mild_copy, smooth_frames


def test_exact_duplicates_keeps_earliest_input():
    items = [
        ("e", 4, "h1"),
        ("b", 1, "h1"),
        ("a", 0, "h1"),
        ("c", 2, "h2"),
        ("d", 3, "h2"),
        ("f", 5, "h3"),
    ]
    assert exact_duplicates(items) == {"b": "a", "e": "a", "d": "c"}


def test_exact_duplicates_order_of_list_does_not_matter():
    assert exact_duplicates([("late", 7, "x"), ("early", 2, "x")]) == {"late": "early"}


@pytest.mark.parametrize("items", [[], [("a", 0, "h1")], [("a", 0, "h1"), ("b", 1, "h2"), ("c", 2, "h3")]])
def test_exact_duplicates_none(items):
    assert exact_duplicates(items) == {}


@pytest.fixture(scope="module")
def clip_frames():
    rng = np.random.default_rng(42)
    base = smooth_frames(rng, 48)
    copies = [mild_copy(rng, base) for _ in range(3)]
    unrelated = [smooth_frames(rng, 48) for _ in range(2)]
    return base, copies, unrelated


def _cand(video_id, index, duration, pixels, frames):
    return Candidate(video_id, index, duration, pixels, fp.fingerprint_frames(frames))


def test_near_duplicates_cluster_keeps_largest_picture(clip_frames):
    base, copies, unrelated = clip_frames
    candidates = [
        _cand("small", 0, 10.0, 320 * 240, base),
        _cand("mid", 1, 10.2, 640 * 480, copies[0]),
        _cand("other", 2, 10.1, 1920 * 1080, unrelated[0]),
        _cand("big", 3, 9.9, 1280 * 720, copies[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {"small": "big", "mid": "big"}


def test_near_duplicates_tie_on_pixels_keeps_earliest_input(clip_frames):
    base, copies, _ = clip_frames
    candidates = [
        _cand("third", 7, 10.0, 1280 * 720, copies[0]),
        _cand("first", 2, 10.0, 1280 * 720, base),
        _cand("second", 5, 10.0, 1280 * 720, copies[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {"third": "first", "second": "first"}


def test_near_duplicates_unrelated_clips_are_not_merged(clip_frames):
    base, _, unrelated = clip_frames
    candidates = [
        _cand("a", 0, 10.0, 100, base),
        _cand("b", 1, 10.0, 100, unrelated[0]),
        _cand("c", 2, 10.0, 100, unrelated[1]),
    ]
    assert near_duplicates(candidates, DedupSettings()) == {}


def test_near_duplicates_single_or_no_candidate():
    frames = smooth_frames(np.random.default_rng(9), 10)
    assert near_duplicates([], DedupSettings()) == {}
    assert near_duplicates([_cand("a", 0, 5.0, 100, frames)], DedupSettings()) == {}


@pytest.mark.parametrize(
    ("duration_a", "duration_b", "merged"),
    [
        (10.0, 30.0, False),  # identical pictures, very different lengths: never compared
        (10.0, 11.5, False),  # beyond the 1 s absolute tolerance
        (10.0, 11.0, True),  # exactly at the absolute tolerance
        (100.0, 104.0, True),  # within 5 % of the duration
        (100.0, 106.0, False),  # beyond 5 %
        (30.0, 10.0, False),  # order of the list does not matter
    ],
)
def test_near_duplicates_only_compares_similar_durations(clip_frames, duration_a, duration_b, merged):
    base, _, _ = clip_frames
    candidates = [_cand("a", 0, duration_a, 100, base), _cand("b", 1, duration_b, 100, base)]
    assert near_duplicates(candidates, DedupSettings()) == ({"b": "a"} if merged else {})


def test_near_duplicates_respects_threshold(clip_frames):
    base, copies, _ = clip_frames
    a, b = _cand("a", 0, 10.0, 100, base), _cand("b", 1, 10.0, 100, copies[2])
    d = fp.distance(a.fingerprint, b.fingerprint)
    assert 0.0 < d < 0.3
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=d)) == {"b": "a"}
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=d - 0.01)) == {}
    assert near_duplicates([a, b], DedupSettings(near_duplicate_threshold=0.0)) == {}


def test_near_duplicates_huge_threshold_merges_unrelated(clip_frames):
    base, _, unrelated = clip_frames
    candidates = [_cand("a", 0, 10.0, 100, base), _cand("b", 1, 10.0, 200, unrelated[0])]
    assert near_duplicates(candidates, DedupSettings(near_duplicate_threshold=1.0)) == {"a": "b"}


def test_the_best_copy_is_preferred_resolution_then_quality_then_sound_then_length_then_input():
    from emotions_data.dedup import Candidate, bits_per_pixel

    def c(vid, index, **kw):
        return Candidate(vid, index, 3.0, 1280 * 720, "p1:" + "0" * 256, **kw)

    big = c("big", 5, source_pixels=1920 * 1080, bits_per_pixel=0.01)
    sharp = c("sharp", 4, source_pixels=1280 * 720, bits_per_pixel=0.2)
    smeared = c("smeared", 0, source_pixels=1280 * 720, bits_per_pixel=0.02)
    silent = c("silent", 1, source_pixels=1280 * 720, bits_per_pixel=0.2, has_audio=False)
    longer = c("longer", 3, source_pixels=1280 * 720, bits_per_pixel=0.2, source_duration_s=9.0)
    order = sorted([smeared, silent, sharp, big, longer], key=Candidate.preference)
    assert [x.video_id for x in order] == ["big", "longer", "sharp", "silent", "smeared"]
    assert bits_per_pixel(2_000_000, None, 10.0, 1280 * 720, 25.0) == pytest.approx(2e6 / (1280 * 720 * 25))
    assert bits_per_pixel(None, 1_000_000, 4.0, 100, 25.0) == pytest.approx(8e6 / 4 / 2500)
    assert bits_per_pixel(None, None, None, 100, 25.0) == 0.0


def test_exact_keepers_points_each_file_at_the_first_with_its_sha256():
    import pyarrow as pa

    from emotions_data.dedup import exact_keepers

    shas = ["a", "b", "a", None, "b", None, "c"]
    assert exact_keepers(shas).tolist() == [0, 1, 0, 3, 1, 3, 6]
    chunked = pa.chunked_array([pa.array(shas[:3]), pa.array(shas[3:])])
    assert exact_keepers(chunked).tolist() == [0, 1, 0, 3, 1, 3, 6], "chunks are one list"
    assert exact_keepers([]).tolist() == []
