"""Pure duplicate detection: which items are copies of which, and which copy is kept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotions_data import fingerprint as fp
from emotions_data.settings import DedupSettings


@dataclass(frozen=True)
class Candidate:
    video_id: str
    input_index: int
    duration_s: float
    pixels: int  # width * height of the normalised media
    fingerprint: str
    source_pixels: int = 0  # width * height of the original (0: unknown, the media's count instead)
    bits_per_pixel: float = 0.0  # the original's bit rate per pixel and frame: quality for its size
    has_audio: bool = True
    source_duration_s: float = 0.0  # the original's picture length

    def preference(self) -> tuple:
        """Lower sorts first. The copy to keep is the best one: the largest original picture, then the most bits
        per pixel and frame (a re-compressed re-upload of the same size has fewer), then one with sound, then the
        longest, then the earliest input."""
        return (
            -(self.source_pixels or self.pixels),
            -round(self.bits_per_pixel, 4),
            not self.has_audio,
            -round(self.source_duration_s, 1),
            self.input_index,
        )


def bits_per_pixel(
    bit_rate: float | None, size_bytes: int | None, duration_s: float | None, pixels: int, fps: float | None
) -> float:
    """Bits per pixel and frame of an original: its bit rate (or its size over its duration) over pixels times
    frames per second; 0.0 when unknown. Re-encoding to save space lowers it; rescaling alone does not."""
    rate = float(bit_rate) if bit_rate else (8.0 * size_bytes / duration_s if size_bytes and duration_s else 0.0)
    if not rate or not pixels or not fps:
        return 0.0
    return rate / (pixels * fps)


def exact_duplicates(items: list[tuple[str, int, str]]) -> dict[str, str]:
    """(video_id, input_index, sha256) triples -> {duplicate id: kept id}; the earliest input is kept."""
    kept: dict[str, tuple[int, str]] = {}
    for video_id, index, sha in sorted(items, key=lambda t: t[1]):
        if sha not in kept:
            kept[sha] = (index, video_id)
    return {vid: kept[sha][1] for vid, _, sha in items if kept[sha][1] != vid}


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


#: Up to this many clips, or with a threshold above `INDEXED_MAX_THRESHOLD`, the exact search runs.
EXACT_UP_TO = 2000
INDEXED_MAX_THRESHOLD = 0.35
PICTURE_BANDS_PER_FRAME = 4
PICTURE_BAND_BITS = 16
SOUND_BAND_BITS = 16
_BAND_SEED = 20240601


def _band_masks(n_bands: int, width: int, bits: int, seed: int) -> np.ndarray:
    """(n_bands,) uint64 masks, each selecting `bits` random bit positions of a `width`-bit word."""
    rng = np.random.default_rng(seed)
    masks = np.zeros(n_bands, np.uint64)
    for b in range(n_bands):
        for pos in rng.choice(width, bits, replace=False):
            masks[b] |= np.uint64(1) << np.uint64(pos)
    return masks


_PICTURE_MASKS = _band_masks(fp.N_FRAMES * PICTURE_BANDS_PER_FRAME, fp.BITS_PER_FRAME, PICTURE_BAND_BITS, _BAND_SEED)
_SOUND_MASKS = _band_masks(fp.N_SEGMENTS, fp.BITS_PER_SEGMENT, SOUND_BAND_BITS, _BAND_SEED + 1)


def _within_window(short: np.ndarray, long: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """The duration rule: the longer clip is at most max(tolerance_s, tolerance_ratio * shorter) longer."""
    window = np.maximum(settings.duration_tolerance_s, settings.duration_tolerance_ratio * short)
    return np.abs(long - short) <= window + 1e-9


def _duration_buckets(durations: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """Bucket numbers such that two clips within the duration window are in the same or adjacent buckets: on a scale
    where the window is one unit wide (linear below tolerance_s / tolerance_ratio seconds, logarithmic above)."""
    tol = max(settings.duration_tolerance_s, 1e-3)
    ratio = settings.duration_tolerance_ratio
    knee = tol / ratio if ratio > 0 else np.inf
    linear = np.minimum(durations, knee) / tol
    above = np.log(np.maximum(durations, knee) / knee) / np.log1p(ratio) if ratio > 0 else 0.0
    return np.floor(linear + above).astype(np.int64)


def _run_pairs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b), a < b, of every pair of equal neighbours-in-run of a sorted key array."""
    n = len(sorted_keys)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], n]
    run_end = np.repeat(ends, ends - starts)
    later = run_end - np.arange(n) - 1  # members after each position in its run
    total = int(later.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    a = np.repeat(np.arange(n), later)
    offsets = np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    return a, a + 1 + offsets


def indexed_pairs(
    fps: fp.Decoded, durations: np.ndarray, settings: DedupSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near-duplicate pairs by banded locality-sensitive hashing (bit sampling; Indyk & Motwani 1998, banding as
    in Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3) on the fingerprints, then the exact
    distance on every candidate.

    Bands: `PICTURE_BANDS_PER_FRAME` random `PICTURE_BAND_BITS`-bit subsets of each informative frame's 35 bits,
    and one `SOUND_BAND_BITS`-bit subset of each sounding segment's 32 bits (sound survives crops, watermarks and
    re-encodes nearly untouched, so it finds the copies whose picture moved most). Two clips are candidates when
    they agree on a whole band, have the same fingerprint version and sit in the same or adjacent duration buckets
    (`_duration_buckets`); candidates are kept when the duration rule and the threshold hold. So every pair
    returned is one the exact search returns; a pair is missed only when no band agrees (recall: README, measured
    by benchmarks/dedup.py). Returns (i, j, distance) arrays, i < j, sorted by (i, j). Memory: O(n) per band."""
    n = len(fps)
    buckets = _duration_buckets(durations, settings)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    version_bit = (fps.version.astype(np.uint64) & np.uint64(1)) << np.uint64(40)
    routes = [(fps.picture, fps.informative, _PICTURE_MASKS, PICTURE_BANDS_PER_FRAME),
              (fps.sound, fps.sounding, _SOUND_MASKS, 1)]  # fmt: skip
    found_i, found_j, found_d = [], [], []
    ids = np.arange(n, dtype=np.int64)
    for words, valid, masks, per_slot in routes:
        for band, mask in enumerate(masks):
            slot = band // per_slot
            members = ids[valid[:, slot]]
            if len(members) < 2:
                continue
            key = (words[members, slot] & mask) | version_bit[members]
            home = (buckets[members].astype(np.uint64) << np.uint64(42)) | key
            ghost = ((buckets[members] + 1).astype(np.uint64) << np.uint64(42)) | key
            keys = np.concatenate([home, ghost])
            who = np.concatenate([members, members])
            is_ghost = np.r_[np.zeros(len(members), bool), np.ones(len(members), bool)]
            order = np.argsort(keys)
            a, b = _run_pairs(keys[order])
            if len(a) == 0:
                continue
            a, b = order[a], order[b]
            keep = ~(is_ghost[a] & is_ghost[b])
            i, j = who[a[keep]], who[b[keep]]
            i, j = np.minimum(i, j), np.maximum(i, j)
            short, long = np.minimum(durations[i], durations[j]), np.maximum(durations[i], durations[j])
            keep = _within_window(short, long, settings)
            i, j = i[keep], j[keep]
            if len(i) == 0:
                continue
            dist = fp.pair_distances(fps, i, j)[0]
            keep = dist <= settings.near_duplicate_threshold
            found_i.append(i[keep])
            found_j.append(j[keep])
            found_d.append(dist[keep])
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    codes, first = np.unique(i * n + j, return_index=True)
    return codes // n, codes % n, d[first]


def exact_pairs(
    fps: fp.Decoded, durations: np.ndarray, settings: DedupSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near-duplicate pairs by comparing every pair of clips within the duration window (a sorted sweep over
    duration): the reference `indexed_pairs` is measured against. Same return shape. Time: about n times the
    clips in a window."""
    n = len(fps)
    order = np.argsort(durations, kind="stable")
    sorted_d = durations[order]
    found_i, found_j, found_d = [], [], []
    window = np.maximum(settings.duration_tolerance_s, settings.duration_tolerance_ratio * sorted_d)
    ends = np.searchsorted(sorted_d, sorted_d + window + 1e-9, side="right")
    for pos in range(n - 1):
        if ends[pos] <= pos + 1:
            continue
        others = order[pos + 1 : ends[pos]]
        mine = np.full(len(others), order[pos])
        dist = fp.pair_distances(fps, mine, others)[0]
        hit = dist <= settings.near_duplicate_threshold
        found_i.append(np.minimum(mine[hit], others[hit]))
        found_j.append(np.maximum(mine[hit], others[hit]))
        found_d.append(dist[hit])
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    i, j, d = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)
    codes, first = np.unique(i * n + j, return_index=True)
    return codes // n, codes % n, d[first]


def near_duplicate_pairs(
    candidates: list[Candidate], settings: DedupSettings, *, method: str = "auto"
) -> list[tuple[int, int, float]]:
    """(i, j, distance) index pairs (i < j) of candidates whose fingerprints are within the threshold and whose
    lengths are within the duration window (`_within_window`). `method`: "indexed" (`indexed_pairs`), "exact"
    (`exact_pairs`) or "auto": exact up to `EXACT_UP_TO` clips or above `INDEXED_MAX_THRESHOLD` (a threshold the
    bands were not designed for), indexed otherwise. Raises ValueError for a fingerprint this version cannot read."""
    if len(candidates) < 2:
        return []
    fps = fp.decode_many([c.fingerprint for c in candidates])
    durations = np.array([c.duration_s for c in candidates], dtype=np.float64)
    if method == "auto":
        small = len(candidates) <= EXACT_UP_TO or settings.near_duplicate_threshold > INDEXED_MAX_THRESHOLD
        method = "exact" if small else "indexed"
    search = {"exact": exact_pairs, "indexed": indexed_pairs}[method]
    i, j, d = search(fps, durations, settings)
    return [(int(a), int(b), float(c)) for a, b, c in zip(i, j, d, strict=True)]


def near_duplicates(candidates: list[Candidate], settings: DedupSettings) -> dict[str, str]:
    """{duplicate id: kept id}: clusters of near-identical clips keep their preferred member."""
    uf = _UnionFind(len(candidates))
    for i, j, _ in near_duplicate_pairs(candidates, settings):
        uf.union(i, j)
    clusters: dict[int, list[Candidate]] = {}
    for i, cand in enumerate(candidates):
        clusters.setdefault(uf.find(i), []).append(cand)
    result = {}
    for members in clusters.values():
        keeper = min(members, key=Candidate.preference)
        result.update({m.video_id: keeper.video_id for m in members if m is not keeper})
    return result
