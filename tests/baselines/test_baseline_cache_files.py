"""Cache files are verified before they are trusted: every kind of damage (cut anywhere, a flipped byte anywhere,
extra bytes, another file altogether, the previous format) is found, and the build replaces the file with one
byte-identical to a fresh build. Real files, written by the real ffmpeg and read back."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from baselines.cache import (
    FORMAT,
    CacheJob,
    CacheSettings,
    ClipError,
    check_clip,
    open_clip,
    run_cache_job,
    write_clip,
)
from emotions_data.demo_corpus import ClipSpec, make_clip

SETTINGS = CacheSettings()
SHA = "ab" * 32


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, bytes]:
    """A media file and the bytes of its cache file."""
    root = tmp_path_factory.mktemp("clip")
    media = make_clip(ClipSpec("Fear", 7, duration_s=1.0), root / "fear.mp4")
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
    assert header["format"] == FORMAT == "emotions-clip-2"
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
    garbled[frames_at + offsets[3] : frames_at + offsets[4]] = bytes(offsets[4] - offsets[3])
    path.write_bytes(bytes(garbled))
    with pytest.raises(ClipError, match=rf"^{named}: frame 3 cannot be decoded .*`emotions cache` rebuilds it"):
        opened.frames(np.array([3]))
    path.write_bytes(good[: _layout(good)[1] + 4])
    with pytest.raises(ClipError, match=rf"^{named}: truncated"):
        opened.mfcc()
    with pytest.raises(ClipError, match=rf"^{named}: truncated"):
        opened.frames(np.array([0]))
