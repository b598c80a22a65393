"""Pure duplicate detection: which items are copies of which, and which copy is kept."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def exact_keepers(sha256: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> np.ndarray:
    """For files listed in input order (earliest input first), the position of the file each one duplicates
    exactly: the first with the same sha256, itself for a first. Shape (n,) int64. One hash pass (Arrow's
    dictionary encoding), so it serves a million inputs; files without a sha256 count as one value."""
    values = sha256 if isinstance(sha256, (pa.Array, pa.ChunkedArray)) else pa.array(list(sha256), pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not len(values):
        return np.zeros(0, np.int64)
    codes = pc.dictionary_encode(pc.fill_null(values, "")).indices.to_numpy(zero_copy_only=False)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return first[inverse].astype(np.int64)


def exact_duplicates(items: list[tuple[str, int, str]]) -> dict[str, str]:
    """(video_id, input_index, sha256) triples -> {duplicate id: kept id}; the earliest input is kept
    (`exact_keepers`)."""
    ordered = sorted(items, key=lambda t: t[1])
    keepers = exact_keepers([sha for _, _, sha in ordered])
    return {ordered[k][0]: ordered[int(j)][0] for k, j in enumerate(keepers) if j != k}


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
PICTURE_BANDS_PER_FRAME = 8
PICTURE_BAND_BITS = 16
#: More picture bands a frame for the pairs without sound to compare, each of `SILENT_BAND_BITS` bits, half from
#: one frame and half from another (docs/lead/duplicates.md, "The search").
SILENT_BANDS_PER_FRAME = 12
SILENT_BAND_BITS = 15
SOUND_BAND_BITS = 16
_BAND_SEED = 20240601
#: Odd multipliers (2^64 / golden ratio, and xxHash's PRIME64_2): multiplicative hashing (Knuth, TAOCP 6.4).
_ODD = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
SEARCH_THREADS = 2


#: Changes whenever `near_duplicates` may give another answer for the same candidates and settings (a kept result
#: of an earlier search is reused only under the same identity, see `search_identity`).
SEARCH_VERSION = "2"  # 2: more picture bands for the pairs without sound


def search_identity() -> str:
    """What, besides the candidates and the settings, decides the search's answer: its version, the fingerprint
    version and the index's constants."""
    return (
        f"dedup {SEARCH_VERSION} fingerprint {fp.VERSION} exact<={EXACT_UP_TO} indexed<={INDEXED_MAX_THRESHOLD} "
        f"bands {PICTURE_BANDS_PER_FRAME}x{PICTURE_BAND_BITS}+{SILENT_BANDS_PER_FRAME}x{SILENT_BAND_BITS}"
        f"+{SOUND_BAND_BITS} seed {_BAND_SEED}"
    )


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
_SILENT_MASKS = np.stack(
    [
        _band_masks(fp.N_FRAMES * SILENT_BANDS_PER_FRAME, fp.BITS_PER_FRAME, bits, _BAND_SEED + 2 + k)
        for k, bits in enumerate((SILENT_BAND_BITS - SILENT_BAND_BITS // 2, SILENT_BAND_BITS // 2))
    ],
    axis=1,
)
_SILENT_FRAMES = [(b % fp.N_FRAMES, (b + 1 + b // fp.N_FRAMES % (fp.N_FRAMES - 1)) % fp.N_FRAMES)
                  for b in range(len(_SILENT_MASKS))]  # fmt: skip


def _within_window(short: np.ndarray, long: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """The duration rule: the longer clip is at most max(tolerance_s, tolerance_ratio * shorter) longer."""
    window = np.maximum(settings.duration_tolerance_s, settings.duration_tolerance_ratio * short)
    return np.abs(long - short) <= window + 1e-9


def _duration_buckets(durations: np.ndarray, settings: DedupSettings) -> np.ndarray:
    """Bucket numbers such that two clips within the duration window are in the same or adjacent buckets: on a scale
    where the window is at most one unit wide (linear below tolerance_s / tolerance_ratio seconds, logarithmic
    above; the log part is up to ratio / log1p(ratio) < 1 + ratio times steeper where they meet, hence the
    division)."""
    tol = max(settings.duration_tolerance_s, 1e-3)
    ratio = settings.duration_tolerance_ratio
    knee = tol / ratio if ratio > 0 else np.inf
    linear = np.minimum(durations, knee) / tol
    above = np.log(np.maximum(durations, knee) / knee) / np.log1p(ratio) if ratio > 0 else 0.0
    return np.floor((linear + above) / (1.0 + ratio + 1e-6)).astype(np.int64)


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing function (the finaliser of SplitMix64, Steele, Lea & Flood 2014), element-wise."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _run_pairs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b), a < b, of every pair of equal entries of a sorted key array."""
    empty = np.empty(0, np.int64), np.empty(0, np.int64)
    same = sorted_keys[1:] == sorted_keys[:-1]
    if not same.any():
        return empty
    where = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # entries in runs of two or more
    keys = sorted_keys[where]
    n = len(keys)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], n]
    later = np.repeat(ends, ends - starts) - np.arange(n) - 1  # members after each position in its run
    total = int(later.sum())
    a = np.repeat(np.arange(n), later)
    offsets = np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    return where[a], where[a + 1 + offsets]


def _picture_bound(threshold: float) -> int:
    """Differing picture bits, counted over the frames informative on both sides, that a pair within `threshold`
    can have at most: the picture distance is (those bits / 35 + 0.5 per frame informative on one side) over at
    most 16 frames, so at least those bits / 560, and the clip distance is at least the picture distance."""
    return int(np.floor(threshold * fp.N_FRAMES * fp.BITS_PER_FRAME + 1e-9))


def _packed_picture(picture: np.ndarray) -> np.ndarray:
    """(n, N_FRAMES) uint64 words of BITS_PER_FRAME bits -> (n, ceil(N_FRAMES * BITS_PER_FRAME / 64)) uint64: the
    same bits back to back, so a candidate's differing bits are counted from 9 words instead of 16."""
    width = fp.BITS_PER_FRAME
    out = np.zeros((len(picture), -(-fp.N_FRAMES * width // 64)), np.uint64)
    for f in range(fp.N_FRAMES):
        word, shift = divmod(f * width, 64)
        out[:, word] |= picture[:, f] << np.uint64(shift)  # bits beyond the word's 64 fall off here...
        if shift + width > 64:
            out[:, word + 1] |= picture[:, f] >> np.uint64(64 - shift)  # ...and start the next word
    return out


@dataclass(frozen=True)
class _Band:
    """One band of the index: the words its bits come from and which clips have them (`valid`), the columns
    (frames or segments) it reads and a mask for each, and whether it pairs only the clips without sound with
    others."""

    words: np.ndarray
    valid: np.ndarray
    slots: tuple[int, ...]
    masks: tuple[np.uint64, ...] | np.ndarray
    silent_only: bool


class _BandSearch:
    """What every band of one `indexed_pairs` search shares, computed once per clip, and a band's three steps:
    its entries (`_entries`), the candidate pairs they give (`_candidates`), and those within the threshold
    (`_verified`). Raises ValueError for more clips than an entry's 40 bits can number."""

    def __init__(self, fps: fp.Decoded, durations: np.ndarray, settings: DedupSettings) -> None:
        n = len(fps)
        idx_bits = max(1, (n - 1).bit_length())
        if idx_bits > 40:
            raise ValueError(f"{n} clips: more than the index can number")
        self.fps, self.durations, self.settings = fps, durations, settings
        self.bound = _picture_bound(settings.near_duplicate_threshold)
        self.ids = np.arange(n, dtype=np.uint64)
        self.silent = ~fps.sounding.any(axis=1)
        self.all_informative = fps.informative.all(axis=1)
        self.packed = _packed_picture(fps.picture)
        self.informative_words = np.where(fps.informative, ~np.uint64(0), np.uint64(0))
        self.low = idx_bits + 1
        self.flag = np.uint64(1) << np.uint64(idx_bits)  # a ghost entry: the clip entered in a neighbouring bucket
        self.number_bits = self.flag - np.uint64(1)
        # Per clip, once: a random 64-bit word for (duration bucket, version), for its own bucket and its neighbours.
        buckets = _duration_buckets(durations, settings).astype(np.uint64)
        shifted = buckets * np.uint64(4) + fps.version.astype(np.uint64)
        self.mixed = {side: _mix(shifted + np.uint64(4 * (side + 1))) for side in (-1, 0, 1)}

    def bands(self) -> list[_Band]:
        """The picture bands of every frame, the sound band of every segment and, when a clip has no sound, the
        bands of two frames for the pairs without sound."""
        fps = self.fps
        bands = [_Band(fps.picture, fps.informative, (band // PICTURE_BANDS_PER_FRAME,), (mask,), False)
                 for band, mask in enumerate(_PICTURE_MASKS)]  # fmt: skip
        bands += [_Band(fps.sound, fps.sounding, (seg,), (mask,), False) for seg, mask in enumerate(_SOUND_MASKS)]
        if self.silent.any():
            bands += [_Band(fps.picture, fps.informative, frames, masks, True)
                      for frames, masks in zip(_SILENT_FRAMES, _SILENT_MASKS, strict=True)]  # fmt: skip
        return bands

    def pairs(self, band: _Band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, distance) of the pairs within the threshold that agree on `band`, i < j."""
        i, j = self._candidates(self._entries(band), band.silent_only)
        return self._verified(i, j)

    def _entry(self, code: np.ndarray, clips: np.ndarray | None, side: int, extra: np.ndarray) -> np.ndarray:
        """`code` mixed with the (bucket, version) word of each clip (`clips`; None: every clip) for its bucket
        `side` (-1, 0, 1), its low bits replaced by `extra` (the ghost flag and the clip's number)."""
        code = code ^ (self.mixed[side] if clips is None else self.mixed[side][clips])
        code >>= np.uint64(self.low)
        code <<= np.uint64(self.low)
        code |= extra
        return code

    def _entries(self, band: _Band) -> np.ndarray:
        """The band's entries, sorted: one sortable word each, a hash of (band bits, version, duration bucket), a
        ghost flag, the clip number. Each clip is entered in its own bucket and, as a ghost, in a neighbouring one,
        so clips of adjacent buckets meet; a pair with no home entry repeats a home-home one (or is out of the
        window) and is dropped. A hash collision only adds a candidate, which the exact distance then rejects."""
        present = band.valid[:, list(band.slots)].all(axis=1)
        every = bool(present.all())  # the common case: no gather of the clips' numbers
        members = self.ids if every else self.ids[present]
        # Multiplying by an odd constant permutes the 64-bit words: the product's high bits hash the band's bits,
        # and two entries share them when their band bits agree and their (bucket, version) words do.
        masked = np.zeros(len(members), np.uint64)
        for slot, mask, odd in zip(band.slots, band.masks, _ODD, strict=False):
            column = band.words[:, slot] if every else band.words[members, slot]
            masked ^= (column & mask) * odd
        home = self._entry(masked, None if every else members, 0, members)
        quiet = self.silent[members] if band.silent_only else None
        if band.silent_only and 2 * np.count_nonzero(quiet) < len(members):
            # Every clip at home, the clips without sound also as ghosts on both sides: fewer entries than every
            # clip twice while they are the minority.
            q = members[quiet]
            parts = [
                home,
                self._entry(masked[quiet], q, -1, q | self.flag),
                self._entry(masked[quiet], q, 1, q | self.flag),
            ]
        else:
            parts = [home, self._entry(masked, None if every else members, 1, members | self.flag)]
        entries = np.concatenate(parts)
        entries.sort()
        return entries

    def _candidates(self, entries: np.ndarray, silent_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """(i, j), i < j, of the entries that share a hash, at least one at home, within the duration window (and
        one of them without sound for a band of those)."""
        a, b = _run_pairs(entries >> np.uint64(self.low))
        ea, eb = entries[a], entries[b]
        keep = ((ea & self.flag) == 0) | ((eb & self.flag) == 0)
        i, j = (ea[keep] & self.number_bits).astype(np.int64), (eb[keep] & self.number_bits).astype(np.int64)
        if silent_only:
            keep = self.silent[i] | self.silent[j]
            i, j = i[keep], j[keep]
        di, dj = self.durations[i], self.durations[j]
        keep = (i != j) & _within_window(np.minimum(di, dj), np.maximum(di, dj), self.settings)
        i, j = i[keep], j[keep]
        return np.minimum(i, j), np.maximum(i, j)

    def _verified(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidate pairs within the threshold, with their distance (`fingerprint.pair_distances`)."""
        # Differing bits over the frames informative on both sides never exceed what the clip distance allows
        # (`_picture_bound`): this cheap test drops most chance collisions before the full distance. Pairs of
        # clips informative throughout (most) count them from the packed bits.
        full = self.all_informative[i] & self.all_informative[j]
        fi, fj = i[full], j[full]
        differing = np.bitwise_count(np.take(self.packed, fi, axis=0) ^ np.take(self.packed, fj, axis=0))
        near = differing.sum(axis=1, dtype=np.int64) <= self.bound
        pi, pj = i[~full], j[~full]
        both = np.take(self.informative_words, pi, axis=0) & np.take(self.informative_words, pj, axis=0)
        picture = self.fps.picture
        differing = np.bitwise_count((np.take(picture, pi, axis=0) ^ np.take(picture, pj, axis=0)) & both)
        partial = differing.sum(axis=1, dtype=np.int64) <= self.bound
        i, j = np.r_[fi[near], pi[partial]], np.r_[fj[near], pj[partial]]
        dist = fp.pair_distances(self.fps, i, j)[0]
        keep = dist <= self.settings.near_duplicate_threshold
        return i[keep], j[keep], dist[keep]


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
    (`_duration_buckets`). A pair in which a clip has no sound (muted, silent, or a ``p1`` fingerprint) has only
    its picture to be found by, so it gets `SILENT_BANDS_PER_FRAME` more picture bands a frame, each of
    `SILENT_BAND_BITS` bits of two frames (the bands of one frame fail together on a frame that changed much;
    shorter bands agree more often). They pair the clips without sound with every clip and no two clips with
    sound: those clips are the minority, so these bands cost a fraction of a whole band. Candidates are kept when
    the duration rule and the threshold hold. So every pair returned is one the exact search returns; a pair is
    missed only when no band agrees (recall: docs/performance.md, measured by benchmarks/dedup.py). Returns
    (i, j, distance) arrays, i < j, sorted by (i, j). Memory: O(n) per band."""
    n = len(fps)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    search = _BandSearch(fps, durations, settings)
    # numpy's sorts and array operations release the GIL: two threads keep two cores busy.
    with ThreadPoolExecutor(max_workers=SEARCH_THREADS) as pool:
        found = list(pool.map(search.pairs, search.bands()))
    i, j, d = (np.concatenate([f[k] for f in found]) for k in range(3))
    if len(i) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
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


def fingerprint_pairs(
    fingerprints: list[str], durations: np.ndarray, settings: DedupSettings, *, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance) arrays (i < j) of clips whose fingerprints are within the threshold and whose lengths
    (`durations`, seconds) are within the duration window (`_within_window`). `method`: "indexed"
    (`indexed_pairs`), "exact" (`exact_pairs`) or "auto": exact up to `EXACT_UP_TO` clips or above
    `INDEXED_MAX_THRESHOLD` (a threshold the bands were not designed for), indexed otherwise. Raises ValueError for
    a fingerprint this version cannot read."""
    if len(fingerprints) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    fps = fp.decode_many(fingerprints)
    durations = np.asarray(durations, dtype=np.float64)
    if method == "auto":
        small = len(fingerprints) <= EXACT_UP_TO or settings.near_duplicate_threshold > INDEXED_MAX_THRESHOLD
        method = "exact" if small else "indexed"
    search = {"exact": exact_pairs, "indexed": indexed_pairs}[method]
    return search(fps, durations, settings)


def near_duplicate_pairs(
    candidates: list[Candidate], settings: DedupSettings, *, method: str = "auto"
) -> list[tuple[int, int, float]]:
    """`fingerprint_pairs` of the candidates' fingerprints and lengths, as (i, j, distance) tuples."""
    durations = np.array([c.duration_s for c in candidates], dtype=np.float64)
    i, j, d = fingerprint_pairs([c.fingerprint for c in candidates], durations, settings, method=method)
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
