"""JPEG frames for the baseline's cache: still frames stored once, encoding within a size budget, batched decoding.

A frame that differs from the last frame stored by at most `tolerance` grey levels in every 8 x 8 block (mean
absolute difference over the block and the channels) is not stored again: it points to that frame's JPEG
(`distinct_frames`). Such a difference is below what JPEG itself changes at quality 85, so the frames the sampler
draws are the same to within the coding error; a duplicated or still frame (a video converted to a higher frame
rate, a pause, the demo's test patterns, which change a few times a second) costs nothing, while a moving face
changes some block by more than that in almost every frame (`benchmarks/baseline_loader.py`: 38 of 1,800 frames
of generated talking heads are stored once, 528 of 900 of the test patterns).
Comparing with the last frame *stored* keeps a slow fade from drifting.

Encoding (Pillow, libjpeg-turbo; 4:2:0 chroma, optimised Huffman tables, which shrink a file by about 5 % and
decode to the same pixels) picks, per clip, the highest quality on a ladder from the recipe's top quality down to
its floor at which the clip's frames fit the budget: a talking head stays at the top quality, a clip of fine
detail everywhere (the demo's moving test patterns) goes down until it fits. The quality used is recorded in the
clip's header.

Decoding uses TorchCodec's image decoder (`torchcodec.decoders.decode_jpeg`), the successor of torchvision's
deprecated one; both wrap libjpeg-turbo and give the same pixels. Where only torch and torchvision are installed
(a stock GPU image, which `benchmarks/baseline_gpu.py` must run on), torchvision's decoder is used, and only its
deprecation notice is silenced: it says nothing about this data, and a loader worker would print it once per
worker and epoch into the training log.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

_TORCHVISION_NOTICE = "The image decoding and encoding capabilities of TorchVision are deprecated"
# TorchCodec's messages start with where in its C++ sources they were raised: "function, path/file.cpp:208, ".
_SOURCE_PREFIX = re.compile(r"^.*?\.(?:cpp|h):\d+,\s*")


def _torchvision_decoder() -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as decode

    def decode_rgb(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TORCHVISION_NOTICE, category=DeprecationWarning)
            return decode(encoded, mode=ImageReadMode.RGB)

    return decode_rgb


def _decoder() -> tuple[str, Callable[[list[torch.Tensor]], list[torch.Tensor]]]:
    try:
        from torchcodec.decoders import decode_jpeg
    except (ImportError, OSError, RuntimeError):  # not installed, or built for another torch
        return "torchvision", _torchvision_decoder()
    return "torchcodec", lambda encoded: decode_jpeg(encoded, mode="RGB")


DECODER, _decode = _decoder()


def decode_rgb(encoded: list[torch.Tensor]) -> list[torch.Tensor]:
    """JPEGs (1-D uint8 tensors of their bytes) -> (3, H, W) uint8 RGB tensors, in one batched call.
    Raises `RuntimeError` (libjpeg's complaint, first line) when one of them cannot be decoded."""
    try:
        return _decode(encoded)
    except RuntimeError as exc:
        raise RuntimeError(jpeg_error(exc)) from None


def jpeg_error(exc: BaseException) -> str:
    """The first line of a decoder's error, without the source location TorchCodec puts before libjpeg's words."""
    line = (str(exc).splitlines() or ["not a JPEG"])[0]
    return _SOURCE_PREFIX.sub("", line) or "not a JPEG"


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """One (H, W, 3) uint8 frame as a baseline JPEG at `quality` (1-95), 4:2:0, optimised Huffman tables."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _block_change(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """The largest mean absolute difference of two (H, W, 3) uint8 frames over any `block` x `block` block (grey
    levels, channels averaged; edge rows and columns that do not fill a block are left out)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
    h, w = diff.shape[0] // block * block, diff.shape[1] // block * block
    if not h or not w:
        return float(diff.max(initial=0.0))
    return float(diff[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3)).max())


def distinct_frames(frames: Sequence[np.ndarray], tolerance: float) -> tuple[list[np.ndarray], list[int]]:
    """The frames to store and, for each of `frames`, the index of the stored frame that stands for it: a frame
    within `tolerance` grey levels of the last stored one in every 8 x 8 block (`_block_change`) is that frame. A
    negative `tolerance` stores every frame."""
    stored: list[np.ndarray] = []
    index: list[int] = []
    for frame in frames:
        if not stored or tolerance < 0 or _block_change(frame, stored[-1]) > tolerance:
            stored.append(frame)
        index.append(len(stored) - 1)
    return stored, index


def quality_ladder(top: int, floor: int, step: int = 5) -> list[int]:
    """`top`, `top - step`, ... down to `floor` (always included), highest first."""
    return sorted({*range(top, floor, -step), floor}, reverse=True)


def encode_within(frames: Sequence[np.ndarray], budget: int, top: int, floor: int) -> tuple[list[bytes], int]:
    """`frames` ((H, W, 3) uint8 each) as JPEGs at the highest quality of `quality_ladder(top, floor)` whose total
    is at most `budget` bytes, and that quality. When even `floor` does not fit, the frames at `floor` (the caller
    may report it). A sample of about 24 frames picks the first quality to try, so a clip is encoded in full
    about once; a sample that misjudges it costs one more pass at the next quality down. Deterministic: the same
    frames give the same bytes."""
    ladder = quality_ladder(top, floor)
    sample = frames[:: max(1, len(frames) // 24)]
    first = len(ladder) - 1
    for k, quality in enumerate(ladder):
        if sum(len(encode_jpeg(f, quality)) for f in sample) * len(frames) <= budget * len(sample):
            first = k
            break
    for quality in ladder[first:]:
        chunks = [encode_jpeg(f, quality) for f in frames]
        if sum(map(len, chunks)) <= budget or quality == ladder[-1]:
            return chunks, quality
    raise AssertionError("unreachable: the ladder's last quality always returns")
