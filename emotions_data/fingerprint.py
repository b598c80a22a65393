"""Perceptual audio-visual fingerprints: what near-duplicate search compares.

Version ``p2`` (written by this code) holds a picture part and a sound part, each with a mask of the places that
carry information:

* **Picture**: `N_FRAMES` frames sampled evenly over the clip, each reduced to `FRAME_SIZE`² grey pixels (area
  averaging), 2-D DCT-II, the `DCT_BAND`² lowest frequencies without the DC term thresholded at their median: 35 bits
  a frame (the DCT hash of Zauner, "Implementation and Benchmarking of Perceptual Image Hash Functions", 2010, as
  pHash computes it). A frame is *informative* when its low-frequency picture has a standard deviation of at least
  `MIN_CONTRAST` grey levels; a flat frame (black, one colour, a fade) has bits that are only rounding noise.
* **Sound**: the clip's mono sound at `AUDIO_RATE` Hz cut into `N_SEGMENTS` equal segments; each segment's power
  spectrum (Hann-windowed frames of `AUDIO_FRAME` samples, averaged) in 33 logarithmically spaced bands from 300 to
  2,000 Hz, and 32 bits per segment: whether each band holds more energy than the next one up. These are the bands
  and the frequency-difference bits of the Philips robust audio hash (Haitsma & Kalker, "A Highly Robust Audio
  Fingerprinting System", ISMIR 2002), averaged over a segment; its time-difference term is left out because a
  sustained sound makes it noise at this time scale. A segment is *sounding* when its RMS level is at least
  `MIN_LEVEL_DBFS`. Bands more than `BAND_RANGE_DB` below the segment's loudest band are raised to that floor (so
  they compare as equal): their order is noise and coding artefacts, which a re-encode changes.

Distance (`distance`, in [0, 1]; ~0.5 for unrelated clips): per modality, the mean over aligned frame (segment)
pairs of their fraction of differing bits, where a pair informative on one side only counts 0.5 (unrelated) and a
pair uninformative on both sides is left out. Pictures that have fewer than `MIN_INFORMATIVE_FRAMES` frame pairs
informative on both sides score 0.5: pictures without information never match. Sound takes part whenever both clips
have sound somewhere (a muted copy is compared by its picture alone): the clip distance is then the larger of the
two, so near-duplicates share picture *and* sound.

Layout of ``p2:`` + hex: picture bits (16 frames x 5 bytes, 35 bits used, big-endian bit order), picture mask
(2 bytes, frame 0 in the high bit), sound bits (16 segments x 4 bytes), sound mask (2 bytes).

Version ``p1`` (written before ``p2``; picture bits only, every frame counted) is still read: `decode` maps it onto
the same arrays with every frame informative and no sound, so `distance` of two ``p1`` fingerprints is exactly their
old distance. A ``p1`` and a ``p2`` fingerprint are never compared (`comparable`). The fingerprint's version is part
of the normalising recipe: the next ingest of a dataset with older fingerprints keeps its media and fingerprints
each clip again from its normalised file (`normalise.fingerprint_file`), without a transcode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERSION = "p2"
READABLE = ("p1", "p2")
N_FRAMES = 16
FRAME_SIZE = 32
DCT_BAND = 6
BITS_PER_FRAME = DCT_BAND * DCT_BAND - 1
MIN_CONTRAST = 2.0  # grey levels (0-255): std of the frame's low-frequency picture
MIN_INFORMATIVE_FRAMES = 4

N_SEGMENTS = 16
AUDIO_RATE = 5512  # Hz, as in Haitsma & Kalker
AUDIO_FRAME = 2048  # samples: 0.37 s, their frame length
N_BANDS = 33
BITS_PER_SEGMENT = N_BANDS - 1
BAND_EDGES_HZ = np.geomspace(300.0, 2000.0, N_BANDS + 1)
MIN_LEVEL_DBFS = -50.0
BAND_RANGE_DB = 30.0  # bands this far below a segment's loudest band count as its floor

_PICTURE_BYTES = 5 * N_FRAMES
_SOUND_BYTES = 4 * N_SEGMENTS
_P2_BYTES = _PICTURE_BYTES + 2 + _SOUND_BYTES + 2


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(FRAME_SIZE)[:DCT_BAND]


def sample_indices(n_available: int, n: int = N_FRAMES) -> np.ndarray:
    return np.linspace(0, n_available - 1, n).round().astype(int)


def _low_band(frames: np.ndarray) -> np.ndarray:
    """(n, FRAME_SIZE, FRAME_SIZE) grey frames -> (n, DCT_BAND² - 1) low-band AC coefficients (orthonormal DCT)."""
    coeffs = _DCT @ frames.astype(np.float64) @ _DCT.T  # low band of the 2-D DCT only
    return coeffs.reshape(len(frames), -1)[:, 1:]


def frame_bits(frames: np.ndarray) -> np.ndarray:
    """(n, FRAME_SIZE, FRAME_SIZE) grey frames -> (n, BITS_PER_FRAME) booleans."""
    flat = _low_band(frames)
    return flat > np.median(flat, axis=1, keepdims=True)


def frame_contrast(frames: np.ndarray) -> np.ndarray:
    """(n, FRAME_SIZE, FRAME_SIZE) grey frames -> (n,) standard deviation in grey levels of each frame's
    low-frequency picture (the part the hash sees; the DCT is orthonormal, so this is its energy per pixel)."""
    return np.sqrt((_low_band(frames) ** 2).sum(axis=1) / FRAME_SIZE**2)


def sound_bits(samples: np.ndarray, rate: int = AUDIO_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Mono samples (floats in [-1, 1]) -> ((N_SEGMENTS, BITS_PER_SEGMENT) booleans, (N_SEGMENTS,) sounding).

    An empty or silent input gives no sounding segment. Source of the bands and bits: see the module docstring."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    bits = np.zeros((N_SEGMENTS, BITS_PER_SEGMENT), bool)
    sounding = np.zeros(N_SEGMENTS, bool)
    if len(samples) < N_SEGMENTS:
        return bits, sounding
    freqs = np.fft.rfftfreq(AUDIO_FRAME, 1.0 / rate)
    band_of = np.searchsorted(BAND_EDGES_HZ, freqs, side="right") - 1
    in_band = (band_of >= 0) & (band_of < N_BANDS)
    window = np.hanning(AUDIO_FRAME)
    floor = 10 ** (MIN_LEVEL_DBFS / 20)
    for s, segment in enumerate(np.array_split(samples, N_SEGMENTS)):
        if np.sqrt(np.mean(segment**2)) < floor:
            continue
        hop = AUDIO_FRAME // 2
        starts = range(0, max(1, len(segment) - AUDIO_FRAME + 1), hop)
        frames = np.stack([np.pad(segment[i : i + AUDIO_FRAME], (0, max(0, i + AUDIO_FRAME - len(segment))))
                           for i in starts])  # fmt: skip
        power = (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2).mean(axis=0)
        energy = np.bincount(band_of[in_band], weights=power[in_band], minlength=N_BANDS)
        # Bands far below the loudest one hold only noise and coding artefacts: they compare as equal.
        energy = np.maximum(energy, energy.max() * 10 ** (-BAND_RANGE_DB / 10))
        bits[s] = energy[:-1] > energy[1:]
        sounding[s] = True
    return bits, sounding


def fingerprint_clip(frames: np.ndarray, samples: np.ndarray | None = None, rate: int = AUDIO_RATE) -> str:
    """Fingerprint (``p2``) of a clip from its decoded grey thumbnails (at least one frame) and its mono sound
    (floats in [-1, 1] at `rate` Hz; None or empty: no sound). Raises ValueError without frames."""
    if len(frames) == 0:
        raise ValueError("no frames to fingerprint")
    picked = frames[sample_indices(len(frames))]
    picture = np.packbits(np.pad(frame_bits(picked), ((0, 0), (0, 40 - BITS_PER_FRAME))), axis=1)
    informative = frame_contrast(picked) >= MIN_CONTRAST
    sound, sounding = sound_bits(samples if samples is not None else np.zeros(0), rate)
    body = (
        picture.tobytes()
        + np.packbits(informative).tobytes()
        + np.packbits(sound, axis=1).tobytes()
        + np.packbits(sounding).tobytes()
    )
    return VERSION + ":" + body.hex()


def fingerprint_frames(frames: np.ndarray) -> str:
    """Fingerprint of a clip without sound from its decoded grey thumbnails (`fingerprint_clip`)."""
    return fingerprint_clip(frames, None)


@dataclass(frozen=True)
class Decoded:
    """Fingerprints as arrays, one row per clip: picture (n, N_FRAMES) uint64 words (35 bits used), informative
    (n, N_FRAMES) bool, sound (n, N_SEGMENTS) uint64 words (32 bits used), sounding (n, N_SEGMENTS) bool, and
    version (n,) int8 (1 or 2)."""

    picture: np.ndarray
    informative: np.ndarray
    sound: np.ndarray
    sounding: np.ndarray
    version: np.ndarray

    def __len__(self) -> int:
        return len(self.version)


def _words(raw: np.ndarray, width: int) -> np.ndarray:
    """(n, k * width) uint8, big-endian groups of `width` bytes -> (n, k) uint64."""
    groups = raw.reshape(len(raw), -1, width).astype(np.uint64)
    out = np.zeros(groups.shape[:2], np.uint64)
    for b in range(width):
        out = (out << np.uint64(8)) | groups[:, :, b]
    return out


def decode_many(fingerprints: list[str]) -> Decoded:
    """Fingerprint strings (``p1`` or ``p2``, mixed) -> `Decoded`. Raises ValueError naming the first malformed one."""
    n = len(fingerprints)
    picture = np.zeros((n, N_FRAMES), np.uint64)
    informative = np.ones((n, N_FRAMES), bool)
    sound = np.zeros((n, N_SEGMENTS), np.uint64)
    sounding = np.zeros((n, N_SEGMENTS), bool)
    version = np.zeros(n, np.int8)
    for tag, size in (("p2", 2 * _P2_BYTES), ("p1", 32 * N_FRAMES // 2)):
        rows = [i for i, f in enumerate(fingerprints) if f[:3] == tag + ":"]
        bad = [i for i in rows if len(fingerprints[i]) != 3 + size]
        if bad:
            raise ValueError(f"not a {tag} fingerprint: {fingerprints[bad[0]][:24]}...")
        if not rows:
            continue
        try:
            raw = np.frombuffer(bytes.fromhex("".join(fingerprints[i][3:] for i in rows)), np.uint8)
        except ValueError:
            raise ValueError(f"not a {tag} fingerprint: malformed hexadecimal digits") from None
        idx = np.array(rows)
        version[idx] = int(tag[1])
        if tag == "p1":  # 8 bytes a frame, the first 5 used
            picture[idx] = _words(raw.reshape(len(rows), N_FRAMES, 8)[:, :, :5].reshape(len(rows), -1), 5)
        else:
            raw = raw.reshape(len(rows), _P2_BYTES)
            picture[idx] = _words(raw[:, :_PICTURE_BYTES], 5)
            at = _PICTURE_BYTES
            informative[idx] = np.unpackbits(raw[:, at : at + 2], axis=1).astype(bool)
            sound[idx] = _words(raw[:, at + 2 : at + 2 + _SOUND_BYTES], 4)
            sounding[idx] = np.unpackbits(raw[:, at + 2 + _SOUND_BYTES :], axis=1).astype(bool)
    unknown = np.flatnonzero(version == 0)
    if len(unknown):
        raise ValueError(
            f"not a fingerprint this version reads ({', '.join(READABLE)}): {fingerprints[unknown[0]][:24]}"
        )
    picture >>= np.uint64(40 - BITS_PER_FRAME)  # the 35 used bits, right-aligned
    return Decoded(picture, informative, sound, sounding, version)


def _bytes(words: np.ndarray, width: int) -> np.ndarray:
    """(n, k) uint64 -> (n, k * width) uint8, big-endian: the inverse of `_words`."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(8)
    return ((words[:, :, None] >> shifts) & np.uint64(0xFF)).astype(np.uint8).reshape(len(words), -1)


def encode_many(fps: Decoded) -> list[str]:
    """`Decoded` arrays -> ``p2`` fingerprint strings (the inverse of `decode_many` for version 2 rows)."""
    raw = np.concatenate(
        [
            _bytes(fps.picture << np.uint64(40 - BITS_PER_FRAME), 5),
            np.packbits(fps.informative, axis=1),
            _bytes(fps.sound, 4),
            np.packbits(fps.sounding, axis=1),
        ],
        axis=1,
    )
    return [VERSION + ":" + row.tobytes().hex() for row in raw]


def decode(fingerprint: str) -> np.ndarray:
    """Fingerprint string -> (N_FRAMES, BITS_PER_FRAME) picture booleans."""
    words = decode_many([fingerprint]).picture[0]
    shifts = np.arange(BITS_PER_FRAME - 1, -1, -1, dtype=np.uint64)
    return ((words[:, None] >> shifts[None, :]) & np.uint64(1)).astype(bool)


def _modality(a: np.ndarray, b: np.ndarray, ma: np.ndarray, mb: np.ndarray, nbits: int) -> tuple[np.ndarray, ...]:
    both, one = ma & mb, ma ^ mb
    differing = np.bitwise_count(a ^ b).astype(np.float64) / nbits
    total = (differing * both).sum(axis=1) + 0.5 * one.sum(axis=1)
    counted = both.sum(axis=1) + one.sum(axis=1)
    return total / np.maximum(counted, 1), both.sum(axis=1), counted


def pair_distances(fps: Decoded, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances of clip pairs (i[k], j[k]) of one `Decoded`: (clip distance, picture distance, sound distance),
    each (len(i),) floats; the sound distance is NaN where sound takes no part. Pairs of different versions get
    1.0 (never comparable). Rules: see the module docstring."""
    picture, both_pic, _ = _modality(
        fps.picture[i], fps.picture[j], fps.informative[i], fps.informative[j], BITS_PER_FRAME
    )
    picture = np.where(both_pic >= MIN_INFORMATIVE_FRAMES, picture, np.maximum(picture, 0.5))
    sound, _, counted = _modality(fps.sound[i], fps.sound[j], fps.sounding[i], fps.sounding[j], BITS_PER_SEGMENT)
    takes_part = fps.sounding[i].any(axis=1) & fps.sounding[j].any(axis=1) & (counted > 0)
    sound = np.where(takes_part, sound, np.nan)
    clip = np.where(takes_part, np.fmax(picture, sound), picture)
    clip = np.where(fps.version[i] == fps.version[j], clip, 1.0)
    return clip, picture, sound


def comparable(a: str, b: str) -> bool:
    """Whether two fingerprints can be compared: the same version."""
    return a.partition(":")[0] == b.partition(":")[0]


def distance(a: str, b: str) -> float:
    """Clip distance of two fingerprints in [0, 1]; ~0.5 for unrelated clips, 1.0 for different versions."""
    fps = decode_many([a, b])
    return float(pair_distances(fps, np.array([0]), np.array([1]))[0][0])


def describe_distance(a: str, b: str) -> str:
    """'distance 0.08 (picture 0.08, sound 0.03)': what a near-duplicate's `reason_detail` quotes."""
    return describe_distances([a], [b])[0]


def describe_distances(a: list[str], b: list[str]) -> list[str]:
    """`describe_distance` of each pair (a[k], b[k]), decoded and measured together."""
    if not a:
        return []
    fps = decode_many([*a, *b])
    n = len(a)
    clips, pictures, sounds = pair_distances(fps, np.arange(n), np.arange(n, 2 * n))
    texts = []
    for clip, picture, sound in zip(clips.tolist(), pictures.tolist(), sounds.tolist(), strict=True):
        parts = f"picture {picture:.2f}" + (f", sound {sound:.2f}" if sound == sound else ", sound not compared")
        texts.append(f"distance {clip:.2f} ({parts})")
    return texts
