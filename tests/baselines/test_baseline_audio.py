"""The audio branch's input: torch MFCC against librosa, chunking, decoding through ffmpeg."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from baselines.audio import MFCC, AudioConfig, audio_chunks, load_waveform, mel_filterbank
from emotions_data.demo_corpus import ClipSpec, make_clip


def signals():
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * 2.5)) / 44100
    yield "tone", (0.5 * np.sin(2 * np.pi * 440 * t) * (1 + 0.8 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    yield "noise", (0.1 * rng.standard_normal(30000)).astype(np.float32)
    click = np.zeros(20000, dtype=np.float32)
    click[10000] = 1.0
    yield "click", click
    yield "chirp", librosa.chirp(fmin=100, fmax=8000, sr=44100, duration=1.3).astype(np.float32)


@pytest.mark.parametrize(("name", "y"), list(signals()))
def test_mfcc_matches_librosa(name, y):
    reference = librosa.feature.mfcc(y=y, sr=44100, n_mfcc=32, n_fft=2048, hop_length=512)
    ours = MFCC()(torch.from_numpy(y)).numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-3 * max(1.0, np.abs(reference).max()), name


def test_mel_filterbank_matches_librosa():
    reference = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=128)
    assert np.allclose(mel_filterbank(44100, 2048, 128), reference, atol=1e-7)


def test_chunks_tile_short_and_crop_long_inputs():
    config = AudioConfig()
    short = torch.arange(32 * 100, dtype=torch.float32).reshape(32, 100)
    chunks = audio_chunks(short, config)
    assert chunks.shape == (16, 256, 32)
    flat = chunks.reshape(-1, 32)
    assert torch.equal(flat[100], short[:, 0]) and torch.equal(flat[0], short[:, 0])  # tiled
    long = torch.randn(32, 5000)
    assert torch.equal(audio_chunks(long, config).reshape(-1, 32), long.transpose(0, 1)[:4096])


def test_waveforms_come_from_ffmpeg_at_44_1_khz(tmp_path):
    clip = make_clip(ClipSpec("Fear", 3, width=160, height=120, duration_s=2.0), tmp_path / "clip.mp4")
    waveform = load_waveform(clip)
    assert abs(len(waveform) / 44100 - 2.0) < 0.1 and float(waveform.abs().max()) > 0.1
    silent = make_clip(ClipSpec("Fear", 4, width=160, height=120, duration_s=1.0, audio=False), tmp_path / "s.mp4")
    assert float(load_waveform(silent).abs().max()) == 0.0
    with pytest.raises(ValueError, match="cannot decode audio"):
        (tmp_path / "bad.mp4").write_bytes(b"not a video")
        load_waveform(tmp_path / "bad.mp4")


def test_stereo_is_downmixed_as_librosa_does(tmp_path):
    """(L + R) / 2, the mean librosa's `to_mono` takes; ffmpeg's `-ac 1` would be 3 dB louder."""
    import wave

    t = np.arange(44100) / 44100
    left = np.round(12000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    right = np.round(5000 * np.sin(2 * np.pi * 1250 * t + 1.0)).astype(np.int16)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(44100)
        f.writeframes(np.stack([left, right], axis=1).tobytes())
    expected = (left.astype(np.float32) / 32768 + right.astype(np.float32) / 32768) / 2
    got = load_waveform(path).numpy()
    assert got.shape == expected.shape
    assert np.allclose(got, expected, atol=1e-6)
