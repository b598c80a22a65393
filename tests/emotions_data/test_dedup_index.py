"""Fingerprint v2 (picture and sound, uninformative parts) and the indexed near-duplicate search."""

from __future__ import annotations

import numpy as np
import pytest

from emotions_data import fingerprint as fp
from emotions_data.dedup import Candidate, exact_pairs, indexed_pairs, near_duplicate_pairs, near_duplicates
from emotions_data.settings import DedupSettings
from tests.support.frames import mild_copy, smooth_frames

RATE = fp.AUDIO_RATE


def tone(seconds: float = 6.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))


def pink_noise(rng: np.random.Generator, seconds: float = 6.0) -> np.ndarray:
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.normal(size=n))
    spectrum[1:] /= np.sqrt(np.fft.rfftfreq(n)[1:])  # 1/f power
    noise = np.fft.irfft(spectrum, n)
    return 0.3 * noise / noise.std()


def test_black_clips_with_different_sound_are_not_near_duplicates():
    black = np.zeros((40, 32, 32), np.uint8)
    a = fp.fingerprint_clip(black, tone())
    b = fp.fingerprint_clip(black, pink_noise(np.random.default_rng(0)))
    assert fp.distance(a, b) >= 0.45
    assert fp.describe_distance(a, b).startswith("distance 0.")


@pytest.mark.parametrize("level_a, level_b", [(0, 0), (16, 235), (90, 91), (128, 128)])
def test_flat_pictures_never_match_whatever_their_colour(level_a, level_b):
    a = fp.fingerprint_clip(np.full((30, 32, 32), level_a, np.uint8), None)
    b = fp.fingerprint_clip(np.full((30, 32, 32), level_b, np.uint8), None)
    assert fp.distance(a, b) == 0.5
    candidates = [Candidate("a", 0, 10.0, 0, a), Candidate("b", 1, 10.0, 0, b)]
    assert near_duplicates(candidates, DedupSettings()) == {}


def test_same_picture_with_other_sound_is_not_a_near_duplicate_but_a_muted_copy_is():
    rng = np.random.default_rng(1)
    frames = smooth_frames(rng, 40)
    original = fp.fingerprint_clip(frames, tone())
    dubbed = fp.fingerprint_clip(mild_copy(rng, frames), pink_noise(rng))
    muted = fp.fingerprint_clip(mild_copy(rng, frames), None)
    reencoded = fp.fingerprint_clip(mild_copy(rng, frames), tone() + rng.normal(0, 0.002, len(tone())))
    assert fp.distance(original, dubbed) > 0.3
    assert fp.distance(original, muted) < 0.12
    assert "sound not compared" in fp.describe_distance(original, muted)
    assert fp.distance(original, reencoded) < 0.12
    assert "sound 0.0" in fp.describe_distance(original, reencoded)


def test_a_black_intro_does_not_hide_a_copy_and_too_few_picture_frames_never_match():
    rng = np.random.default_rng(2)
    frames = smooth_frames(rng, 32)
    intro = frames.copy()
    intro[:16] = 0  # half the sampled frames black, on both copies
    copy = mild_copy(rng, intro)
    copy[:16] = 0
    assert fp.distance(fp.fingerprint_clip(intro), fp.fingerprint_clip(copy)) < 0.12
    almost_black = frames.copy()
    almost_black[:-2] = 0  # fewer informative frames than MIN_INFORMATIVE_FRAMES
    other = mild_copy(rng, almost_black)
    other[:-2] = 0
    assert fp.distance(fp.fingerprint_clip(almost_black), fp.fingerprint_clip(other)) == 0.5


def _p1(frames: np.ndarray) -> str:
    """A fingerprint in the previous format, ``p1``, as the earlier code wrote it."""
    words = np.packbits(fp.frame_bits(frames[fp.sample_indices(len(frames))]), axis=1, bitorder="big")
    return "p1:" + "".join(row.tobytes().hex().ljust(16, "0") for row in words)


def test_p1_fingerprints_are_read_and_compared_with_p1_only():
    rng = np.random.default_rng(3)
    frames = smooth_frames(rng, 40)
    copy = mild_copy(rng, frames)
    old_a, old_b, new_b = _p1(frames), _p1(copy), fp.fingerprint_frames(copy)
    bits_a, bits_b = fp.decode(old_a), fp.decode(old_b)
    assert fp.distance(old_a, old_b) == pytest.approx(np.mean(bits_a != bits_b))  # the old distance, exactly
    assert (fp.decode(new_b) == bits_b).all(), "the picture bits did not change"
    assert fp.distance(old_a, new_b) == 1.0 and not fp.comparable(old_a, new_b)
    candidates = [Candidate("a", 0, 10.0, 0, old_a), Candidate("b", 1, 10.0, 0, old_b), Candidate("c", 2, 10, 0, new_b)]
    assert near_duplicates(candidates, DedupSettings()) == {"b": "a"}


@pytest.mark.parametrize("bad", ["p3:00", "p2:" + "0" * 10, "p2:" + "zz" * 148, "nothing"])
def test_malformed_fingerprints_are_refused(bad):
    with pytest.raises(ValueError, match="fingerprint"):
        fp.decode_many([fp.fingerprint_frames(np.zeros((2, 32, 32), np.uint8)), bad])


def test_encode_many_inverts_decode_many():
    rng = np.random.default_rng(4)
    strings = [fp.fingerprint_clip(smooth_frames(rng, 20), tone(2.0, 300 + 50 * k)) for k in range(5)]
    strings.append(fp.fingerprint_clip(np.zeros((20, 32, 32), np.uint8), None))
    assert fp.encode_many(fp.decode_many(strings)) == strings


def planted(n: int, seed: int) -> tuple[fp.Decoded, np.ndarray]:
    """n fingerprints: unrelated clips and copies of some of them (picture flips up to 0.15, sound flips up to 0.05,
    some muted), flat frames and silent clips among them, durations around 15 s."""
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 2**fp.BITS_PER_FRAME, (n, fp.N_FRAMES), dtype=np.uint64)
    informative = rng.random((n, fp.N_FRAMES)) > 0.1
    sound = rng.integers(0, 2**fp.BITS_PER_SEGMENT, (n, fp.N_SEGMENTS), dtype=np.uint64)
    sounding = (rng.random((n, 1)) < 0.7) & (rng.random((n, fp.N_SEGMENTS)) > 0.1)
    durations = np.exp(rng.normal(np.log(15.0), 0.5, n))
    m = n // 5
    src, dst = rng.choice(n // 2, m, replace=False), np.arange(n - m, n)
    for words, bits, rates in ((picture, fp.BITS_PER_FRAME, 0.15), (sound, fp.BITS_PER_SEGMENT, 0.05)):
        flips = rng.random((m, words.shape[1], bits)) < rng.uniform(0, rates, (m, 1, 1))
        words[dst] = words[src] ^ (flips.astype(np.uint64) << np.arange(bits, dtype=np.uint64)).sum(2, dtype=np.uint64)
    informative[dst] = informative[src]
    sounding[dst] = sounding[src] & (rng.random((m, 1)) > 0.2)
    durations[dst] = durations[src] + rng.uniform(-0.4, 0.4, m)
    picture[~informative] = 0  # what fingerprint_clip stores for a flat frame is rounding noise; any value works
    return fp.Decoded(picture, informative, sound, sounding, np.full(n, 2, np.int8)), durations


@pytest.mark.parametrize("n, seed", [(400, 0), (1500, 1), (3000, 2)])
def test_indexed_search_equals_the_exact_search_on_planted_copies(n, seed):
    fps, durations = planted(n, seed)
    settings = DedupSettings()
    exact = exact_pairs(fps, durations, settings)
    indexed = indexed_pairs(fps, durations, settings)
    assert len(exact[0]) >= n // 6  # the copies are there to be found
    for got, want in zip(indexed, exact, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("version", [2, 1])
def test_a_dataset_without_sound_is_searched_by_its_picture_alone(version):
    """No clip has sound (a silent dataset, or one of ``p1`` fingerprints): every band pairs clips without sound;
    the search finds nearly all the exact search finds (copies up to picture distance 0.2, some frames flat) and
    nothing else."""
    fps, durations = planted(2500, 8)
    fps = fp.Decoded(fps.picture, fps.informative, fps.sound, np.zeros_like(fps.sounding),
                     np.full(len(fps), version, np.int8))  # fmt: skip
    settings = DedupSettings()
    exact = exact_pairs(fps, durations, settings)
    want = dict(zip(zip(exact[0].tolist(), exact[1].tolist(), strict=True), exact[2].tolist(), strict=True))
    i, j, d = indexed_pairs(fps, durations, settings)
    got = dict(zip(zip(i.tolist(), j.tolist(), strict=True), d.tolist(), strict=True))
    assert len(want) >= 2500 // 6 and got.items() <= want.items()
    assert len(got) >= 0.995 * len(want)  # 499 of 500 here: one copy at 0.20 over 12 informative frames is missed


def test_copies_without_sound_far_in_picture_are_found_as_the_exact_search_finds_them():
    """A muted copy has only its picture bands: at picture distance 0.18-0.23 a 16-bit band agrees with probability
    0.82^16-0.77^16 (4-1.5 %), so the 128 bands every pair has miss some; the bands for clips without sound find
    nearly all the exact search finds."""
    rng = np.random.default_rng(7)
    n, m = 4000, 150
    picture = rng.integers(0, 2**fp.BITS_PER_FRAME, (n, fp.N_FRAMES), dtype=np.uint64)
    sound = rng.integers(0, 2**fp.BITS_PER_SEGMENT, (n, fp.N_SEGMENTS), dtype=np.uint64)
    sounding = np.repeat(rng.random((n, 1)) < 0.85, fp.N_SEGMENTS, axis=1)
    durations = np.exp(rng.normal(np.log(15.0), 0.5, n))
    src, dst = rng.choice(n - m, m, replace=False), np.arange(n - m, n)
    flips = rng.random((m, fp.N_FRAMES, fp.BITS_PER_FRAME)) < rng.uniform(0.18, 0.23, (m, 1, 1))
    picture[dst] = picture[src] ^ (flips.astype(np.uint64) << np.arange(fp.BITS_PER_FRAME, dtype=np.uint64)).sum(
        2, dtype=np.uint64
    )
    sounding[dst] = False  # muted
    durations[dst] = durations[src] + rng.uniform(-0.4, 0.4, m)
    fps = fp.Decoded(picture, np.ones((n, fp.N_FRAMES), bool), sound, sounding, np.full(n, 2, np.int8))
    settings = DedupSettings()
    exact = exact_pairs(fps, durations, settings)
    assert len(exact[0]) >= m * 9 // 10  # nearly every copy is within the threshold
    i, j, d = indexed_pairs(fps, durations, settings)
    want = dict(zip(zip(exact[0].tolist(), exact[1].tolist(), strict=True), exact[2].tolist(), strict=True))
    got = dict(zip(zip(i.tolist(), j.tolist(), strict=True), d.tolist(), strict=True))
    assert got.items() <= want.items()  # every pair found is one the exact search finds, at its distance
    assert len(got) >= 0.98 * len(want)  # 149 of 150 here; the whole bands alone found 134


def test_indexed_search_keeps_the_duration_rule():
    fps, durations = planted(600, 5)
    settings = DedupSettings(duration_tolerance_s=0.2, duration_tolerance_ratio=0.01)
    i, j, _ = indexed_pairs(fps, durations, settings)
    gap = np.abs(durations[i] - durations[j])
    assert (gap <= np.maximum(0.2, 0.01 * np.minimum(durations[i], durations[j])) + 1e-9).all()
    exact = exact_pairs(fps, durations, settings)
    np.testing.assert_array_equal(i, exact[0])
    np.testing.assert_array_equal(j, exact[1])


def test_near_duplicate_pairs_methods_agree_through_candidates():
    fps, durations = planted(300, 6)
    strings = fp.encode_many(fps)
    candidates = [Candidate(f"v{k}", k, float(durations[k]), 0, s) for k, s in enumerate(strings)]
    settings = DedupSettings()
    exact = near_duplicate_pairs(candidates, settings, method="exact")
    assert exact == near_duplicate_pairs(candidates, settings, method="indexed")
    assert exact == near_duplicate_pairs(candidates, settings)
    assert all(d <= settings.near_duplicate_threshold for _, _, d in exact)


FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]


def _normalised_fingerprint(src, out) -> str:
    from emotions_data.normalise import SourceVideo, normalise
    from emotions_data.probe import probe_file
    from emotions_data.settings import FilterSettings, NormaliseSettings

    facts = probe_file(src)
    source = SourceVideo(facts.width, facts.height, facts.fps, facts.video_duration_s or 0.0, facts.has_audio)
    return normalise(src, out, source, NormaliseSettings(), FilterSettings()).fingerprint


def test_real_media_black_clips_with_tone_or_pink_noise_stay_apart_and_a_reencode_merges(tmp_path):
    """Through the real ffmpeg: the fingerprint is made in the normalising pass, sound included."""
    import subprocess

    def clip(name: str, video: str, audio: str, extra: list[str] = ()) -> str:
        path = tmp_path / f"{name}.mp4"
        cmd = [*FFMPEG, "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-t", "2", *extra,
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        return _normalised_fingerprint(path, tmp_path / f"{name}.out.mp4")

    black_tone = clip("black_tone", "color=black:s=96x64:r=25", "sine=f=440:sample_rate=44100")
    black_pink = clip("black_pink", "color=black:s=96x64:r=25", "anoisesrc=color=pink:sample_rate=44100:a=0.3")
    life = "life=s=48x32:seed=5:ratio=0.35:rate=25:mold=10,scale=96:64:flags=neighbor"
    original = clip("original", life, "sine=f=330:sample_rate=44100")
    copy = clip("copy", life, "sine=f=330:sample_rate=44100", ["-vf", "scale=64:42", "-crf", "35"])
    assert fp.distance(black_tone, black_pink) >= 0.45
    assert fp.decode_many([black_tone]).sounding.all() and not fp.decode_many([black_tone]).informative.any()
    assert fp.distance(original, copy) < 0.15
    assert "sound 0.0" in fp.describe_distance(original, copy)
    candidates = [Candidate(n, k, 2.0, 0, f) for k, (n, f) in
                  enumerate([("bt", black_tone), ("bp", black_pink), ("o", original), ("c", copy)])]  # fmt: skip
    assert near_duplicates(candidates, DedupSettings()) == {"c": "o"}


@pytest.mark.parametrize("tol, ratio", [(1.0, 0.05), (1.0, 0.07), (0.5, 0.3), (2.0, 0.0), (0.0, 0.1)])
def test_clips_within_the_duration_window_share_or_neighbour_a_bucket(tol, ratio):
    from emotions_data.dedup import _duration_buckets, _within_window

    settings = DedupSettings(duration_tolerance_s=tol, duration_tolerance_ratio=ratio)
    knee = tol / ratio if ratio else 10.0  # where the window stops being tol and becomes ratio * duration
    short = np.r_[np.geomspace(0.2, 4000, 20_000), np.linspace(max(knee - tol, 0.1), knee, 20_000)]
    for share in (1.0, 0.999, 0.5):  # at the edge of the window, just inside, half way
        long = short + share * np.maximum(tol, ratio * short)
        assert _within_window(short, long, settings).all()
        gap = _duration_buckets(long, settings) - _duration_buckets(short, settings)
        assert ((gap >= 0) & (gap <= 1)).all()
