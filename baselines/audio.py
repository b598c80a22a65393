"""The audio branch's input: 44.1 kHz mono -> 32 MFCCs (n_fft 2048, hop 512) computed in torch, tiled or
cropped to 4096 frames and cut into 16 chunks of 256 x 32.

The MFCC follows librosa's definition (`librosa.feature.mfcc`, which the authors used): power STFT
(Hann, centred, zero-padded), 128-band Slaney mel filterbank, power_to_db (ref 1, amin 1e-10, top_db 80),
orthonormal DCT-II. The tests hold it to librosa's numbers.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emotions_data.probe import ProbeError, run_ffprobe


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 44100
    n_mfcc: int = 32
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128
    frames: int = 4096  # MFCC frames per video after tiling/cropping
    chunks: int = 16  # one per video segment


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised triangular filters, as librosa.filters.mel builds them."""
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """(n_mfcc, n_mels) orthonormal DCT-II."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi / n_mels * (n + 0.5) * k) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis


class MFCC(torch.nn.Module):
    """waveform (..., samples) -> MFCC (..., n_mfcc, frames)."""

    def __init__(self, config: AudioConfig = AudioConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64))
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(config.sample_rate, config.n_fft, config.n_mels)))
        self.register_buffer("dct", torch.from_numpy(dct_matrix(config.n_mfcc, config.n_mels)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = torch.stft(
            waveform.to(torch.float64), c.n_fft, c.hop, window=self.window, center=True, pad_mode="constant",
            return_complex=True,
        ).abs() ** 2  # fmt: skip
        mel = self.mel @ spec
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - 80.0)
        return (self.dct @ db).to(torch.float32)


def _audio_channels(path: Path) -> int:
    """Channels of the first audio stream (0: none). `ValueError` when ffprobe cannot read the file."""
    try:
        data = run_ffprobe(path, ["-select_streams", "a:0", "-show_entries", "stream=channels"])
    except ProbeError as err:
        raise ValueError(f"{path}: cannot decode audio: {err}") from None
    streams = data.get("streams") or [{}]
    return int(streams[0].get("channels") or 0)


def load_waveform(path: Path, sample_rate: int = 44100) -> torch.Tensor:
    """Mono float32 samples at `sample_rate`, decoded by ffmpeg; silence when the file has no audio.

    Channels are averaged, (L + R) / 2 for stereo, as librosa's `to_mono` does for the authors (ffmpeg's own
    `-ac 1` downmix sums stereo at 1/sqrt(2) each, 3 dB louder). Raises `ValueError` when ffmpeg cannot decode it.
    """
    channels = _audio_channels(path)
    if channels == 0:  # a video without sound
        return torch.zeros(sample_rate)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ar", str(sample_rate),
           "-f", "f32le", "pipe:1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"{path}: cannot decode audio: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    samples = np.frombuffer(proc.stdout, dtype=np.float32)
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return torch.from_numpy(samples.copy()) if len(samples) else torch.zeros(sample_rate)


def audio_chunks(mfcc: torch.Tensor, config: AudioConfig = AudioConfig()) -> torch.Tensor:
    """(n_mfcc, frames) -> (chunks, frames / chunks, n_mfcc): tiled when short, cropped from the start when long."""
    frames = mfcc.transpose(0, 1)
    if frames.shape[0] < config.frames:
        frames = frames.repeat(math.ceil(config.frames / max(frames.shape[0], 1)), 1)
    return frames[: config.frames].reshape(config.chunks, config.frames // config.chunks, config.n_mfcc)
