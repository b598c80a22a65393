"""Cache files are verified before they are trusted: every kind of damage (cut anywhere, a flipped byte anywhere,
extra bytes, another file altogether, the previous format) is found, and the build replaces the file with one
byte-identical to a fresh build. Real files, written by the real ffmpeg and read back."""

from __future__ import annotations

import json
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.cache import (
    FORMAT,
    CacheJob,
    CacheSettings,
    ClipError,
    check_clip,
    open_clip,
    run_cache_job,
    write_cache_file,
    write_clip,
)
from baselines.jpeg import _torchvision_decoder, decode_rgb, encode_jpeg
from emotions_data.demo_corpus import ClipSpec, make_clip
from emotions_data.probe import sha256_file

SETTINGS = CacheSettings()
SHA = "ab" * 32


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, bytes]:
    """A media file and the bytes of its cache file."""
    global SHA
    root = tmp_path_factory.mktemp("clip")
    media = make_clip(ClipSpec("Fear", 7, duration_s=1.0), root / "fear.mp4")
    SHA = sha256_file(media)  # what a release records of it: a build hashes the media against it
    out = write_clip(media, root / "fear.clip", SETTINGS, SHA)
    return media, out.read_bytes()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1 :]


def _layout(data: bytes) -> tuple[int, int]:
    """(header length, where the payload starts)."""
    (length,) = struct.unpack_from("<Q", data)
    return length, 12 + length


def _version_1(data: bytes) -> bytes:
    """The same clip in the layout before checksums: 8-byte header length, JSON header, payload."""
    start = _layout(data)[1]
    header = json.loads(data[12:start])
    header["format"] = "emotions-clip-1"
    for key in ("payload_bytes", "payload_crc32"):
        del header[key]
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data[start:]


DAMAGE = {  # name -> (damaged bytes from the good ones, whether the cheap check (header and length) finds it)
    "empty": (lambda d: b"", True),
    "cut in the preamble": (lambda d: d[:5], True),
    "cut in the header": (lambda d: d[: 12 + _layout(d)[0] // 2], True),
    "cut right after the header": (lambda d: d[: _layout(d)[1]], True),
    "cut in the payload": (lambda d: d[: (_layout(d)[1] + len(d)) // 2], True),
    "last byte missing": (lambda d: d[:-1], True),
    "a byte too many": (lambda d: d + b"\0", True),
    "flipped header length": (lambda d: _flip(d, 0), True),
    "flipped header checksum": (lambda d: _flip(d, 9), True),
    "flipped header byte": (lambda d: _flip(d, 12 + _layout(d)[0] // 2), True),
    "flipped MFCC byte": (lambda d: _flip(d, _layout(d)[1] + 10), False),
    "flipped frame byte": (lambda d: _flip(d, len(d) - 100), False),
    "a text file": (lambda d: b"not a cache file\n" * 40, True),
    "the previous format": (_version_1, True),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_every_kind_of_damage_is_found_and_the_build_replaces_the_file(clip, tmp_path, kind):
    media, good = clip
    damage, cheap = DAMAGE[kind]
    path = tmp_path / "cache" / "fear.clip"
    path.parent.mkdir()
    path.write_bytes(damage(good))

    check = check_clip(path, SHA, SETTINGS)
    assert check.state == "damaged" and check.reason, check
    assert check_clip(path, SHA, SETTINGS, verify=False).state == ("damaged" if cheap else "current")
    if cheap:  # opening it is refused, with one line naming the file (no struct.error, no bare JSON error)
        with pytest.raises(ClipError, match=rf"^{re.escape(str(path))}: ") as err:
            open_clip(path)
        assert "\n" not in str(err.value)

    job = CacheJob((("fear", str(media), SHA),), str(path.parent), SETTINGS)
    (result,) = run_cache_job(job)
    assert result.status == "built" and result.damaged == f"{path}: {check.reason}"
    assert path.read_bytes() == good, "the rebuilt file is the file a fresh build writes"
    assert check_clip(path, SHA, SETTINGS).state == "current"
    assert run_cache_job(job)[0].status == "current"


def test_the_header_records_the_format_length_and_checksum(clip, tmp_path):
    _, good = clip
    path = tmp_path / "fear.clip"
    path.write_bytes(good)
    header = open_clip(path).header
    assert header["format"] == FORMAT == "emotions-clip-3"
    assert _layout(good)[1] + header["payload_bytes"] == len(good) and isinstance(header["payload_crc32"], int)


def test_other_media_or_another_recipe_is_stale_not_damaged(clip, tmp_path):
    _, good = clip
    path = tmp_path / "fear.clip"
    path.write_bytes(good)
    assert check_clip(path, SHA, SETTINGS).state == "current"
    assert check_clip(path, "cd" * 32, SETTINGS).state == "stale"
    assert check_clip(path, SHA, CacheSettings(short_side=144)).state == "stale"
    assert check_clip(tmp_path / "none.clip", SHA, SETTINGS).state == "missing"


def test_a_file_damaged_after_it_was_opened_fails_naming_it(clip, tmp_path):
    """Reading frames verifies nothing more (training stays cheap), but what it cannot read it names."""
    _, good = clip
    path = tmp_path / "fear.clip"
    path.write_bytes(good)
    opened, named = open_clip(path), re.escape(str(path))
    assert opened.frames(np.array([0, 1])).shape[0] == 2 and opened.mfcc().ndim == 2
    offsets = opened.header["offsets"]
    frames_at = _layout(good)[1] + opened.header["payload_bytes"] - offsets[-1]
    garbled = bytearray(good)
    jpeg = opened.header["frame_jpeg"][3]  # the stored JPEG that frame 3 is (still frames share one)
    garbled[frames_at + offsets[jpeg] : frames_at + offsets[jpeg + 1]] = bytes(offsets[jpeg + 1] - offsets[jpeg])
    path.write_bytes(bytes(garbled))
    with pytest.raises(ClipError, match=rf"^{named}: frame 3 cannot be decoded .*`emotions cache` rebuilds it"):
        opened.frames(np.array([3]))
    path.write_bytes(good[: _layout(good)[1] + 4])
    with pytest.raises(ClipError, match=rf"^{named}: truncated"):
        opened.mfcc()
    with pytest.raises(ClipError, match=rf"^{named}: truncated"):
        opened.frames(np.array([0]))


def test_the_size_budget_lowers_the_quality_of_a_detailed_clip_only(tmp_path):
    """Noise (the worst case: nothing to compress) fits the budget at a lower quality; a smooth clip keeps the top
    quality. Every frame is still there, and decodes to the cache's size."""
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (200, 112, 3), dtype=np.uint8) for _ in range(30)]
    ramp = np.linspace(0, 255, 200 * 112 * 3).astype(np.uint8).reshape(200, 112, 3)
    mfcc = np.zeros((32, 40), np.float32)
    for name, frames, top in (("noise", noise, False), ("ramp", [ramp] * 30, True)):
        clip = open_clip(write_cache_file(tmp_path / f"{name}.clip", frames, mfcc, SETTINGS, SHA))
        assert clip.n_frames == 30 and clip.header["offsets"][-1] <= SETTINGS.frame_bytes * 30, name
        assert (clip.header["jpeg_quality"] == SETTINGS.jpeg_quality) == top, clip.header["jpeg_quality"]
        assert clip.frames(np.arange(30)).shape == (30, 200, 112, 3)
    assert open_clip(tmp_path / "noise.clip").header["jpeg_quality"] >= SETTINGS.min_jpeg_quality


def test_the_decoder_gives_torchvisions_pixels_without_its_deprecation_notice():
    frame = np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    encoded = [torch.frombuffer(bytearray(encode_jpeg(frame, 85)), dtype=torch.uint8)] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours, theirs = decode_rgb(encoded), _torchvision_decoder()(encoded)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)) and ours[0].shape == (3, 64, 48)


def test_still_frames_are_stored_once_and_read_back_as_every_frame(tmp_path):
    """A frame within the tolerance of the last one stored (in every 8 x 8 block) is that frame; a change in one
    block above it is a frame of its own. A file of the previous format is refused by name, never read."""
    base = np.full((200, 112, 3), 100, np.uint8)
    moved = base.copy()
    moved[40:48, 40:48] += 30  # one block changes: a blink, a lip
    frames = [base, base + 1, base, moved, moved, base]
    path = write_cache_file(tmp_path / "still.clip", frames, np.zeros((32, 40), np.float32), SETTINGS, SHA)
    clip = open_clip(path)
    assert clip.header["frame_jpeg"] == [0, 0, 0, 1, 1, 2] and clip.n_frames == 6
    read = clip.frames(np.array([5, 3, 1, 4])).int()
    assert (read[1] - read[0])[40:48, 40:48].float().mean() > 25 and torch.equal(read[1], read[3])
    assert (read[2] - torch.from_numpy(base)).abs().max() <= 2
    start = _layout(path.read_bytes())[1]
    header = json.loads(path.read_bytes()[12:start])
    header["format"] = "emotions-clip-2"
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<QI", len(head), zlib.crc32(head)) + head + path.read_bytes()[start:])
    assert check_clip(path, SHA, SETTINGS).reason == "not an emotions-clip-3 cache file (format 'emotions-clip-2')"
