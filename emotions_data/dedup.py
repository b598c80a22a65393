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


def near_duplicate_pairs(candidates: list[Candidate], settings: DedupSettings) -> list[tuple[int, int, float]]:
    """Index pairs whose fingerprints are within the threshold. Only clips of about the same
    length are compared (sorted sweep over duration), which keeps this far below n² in practice."""
    if len(candidates) < 2:
        return []
    order = np.argsort([c.duration_s for c in candidates], kind="stable")
    durations = np.array([candidates[i].duration_s for i in order])
    bits = np.stack([fp.decode(candidates[i].fingerprint).ravel() for i in order])
    pairs = []
    for pos in range(len(order) - 1):
        window = max(settings.duration_tolerance_s, settings.duration_tolerance_ratio * durations[pos])
        end = int(np.searchsorted(durations, durations[pos] + window, side="right"))
        if end <= pos + 1:
            continue
        dist = np.mean(bits[pos + 1 : end] != bits[pos], axis=1)
        for offset in np.flatnonzero(dist <= settings.near_duplicate_threshold):
            pairs.append((int(order[pos]), int(order[pos + 1 + offset]), float(dist[offset])))
    return pairs


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
