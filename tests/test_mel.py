"""The torch MelSpectrogram matches librosa's, and its config round-trips."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from vc.audio import load_audio
from vc.mel import MelConfig, MelSpectrogram, mel_filterbank


@pytest.mark.parametrize("config", [
    MelConfig(),
    MelConfig(n_fft=400, hop_length=160, n_mels=40, power=2.0, pad_mode="constant",
              compression="none"),
    MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=800, n_mels=80,
              fmin=90.0, fmax=7600.0, mel_scale="htk", mel_norm=None, compression="log10"),
])
def test_matches_librosa(test_other, config):
    audio = load_audio(test_other["367"][0], sample_rate=config.sample_rate)
    ours = MelSpectrogram(config)(torch.from_numpy(audio.samples)).numpy()
    theirs = librosa.feature.melspectrogram(
        y=audio.samples, sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
        win_length=config.win_length, window=config.window, center=config.center,
        pad_mode=config.pad_mode, power=config.power, n_mels=config.n_mels, fmin=config.fmin,
        fmax=config.fmax, htk=config.mel_scale == "htk", norm=config.mel_norm)
    if config.compression == "log":
        theirs = np.log(np.maximum(theirs, config.log_floor))
    elif config.compression == "log10":
        theirs = np.log10(np.maximum(theirs, config.log_floor))
    assert ours.shape == theirs.shape
    if config.compression == "none":
        rel = np.abs(ours - theirs).max() / np.abs(theirs).max()
        assert rel < 1e-4
    else:
        assert np.abs(ours - theirs).max() < 1e-3


def test_filterbank_matches_librosa():
    for config in (MelConfig(), MelConfig(n_mels=40, mel_scale="htk", mel_norm=None, fmin=55.0)):
        ours = mel_filterbank(config).numpy()
        theirs = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                     n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
                                     htk=config.mel_scale == "htk", norm=config.mel_norm)
        assert np.abs(ours - theirs).max() < 1e-6 * max(1.0, np.abs(theirs).max())


def test_db_compression_inverts():
    config = MelConfig(compression="db", fmin=90.0, fmax=7600.0)
    mel = MelSpectrogram(config)
    x = torch.logspace(-4, 1, 50)
    assert torch.allclose(mel.decompress(mel.compress(x)), x, rtol=1e-4)
    out = mel.compress(torch.tensor([1e-9, 1e3]))
    assert out.min() >= 0 and out.max() <= 1  # AutoVC's [0, 1] range


def test_batch_and_frame_count():
    mel = MelSpectrogram(MelConfig())
    wav = torch.randn(3, 16000)
    out = mel(wav)
    assert out.shape == (3, 80, mel.num_frames(16000))
    assert torch.allclose(out[1], mel(wav[1]), atol=1e-5)


def test_config_dict_round_trip_and_validation():
    config = MelConfig(n_mels=64, compression="db")
    assert MelConfig.from_dict(config.to_dict()) == config
    assert MelConfig().mismatches(config) == ["n_mels: 80 vs 64", "compression: 'log' vs 'db'"]
    with pytest.raises(ValueError, match="unknown mel settings"):
        MelConfig.from_dict({"n_mel": 80})
    with pytest.raises(ValueError, match="fmax"):
        MelConfig(sample_rate=8000, fmax=8000.0)
    with pytest.raises(ValueError, match="compression"):
        MelConfig(compression="cube")


def test_long_inputs_are_computed_in_chunks_with_the_same_frames(test_other, monkeypatch):
    clip = load_audio(next(iter(test_other.values()))[0]).resample(16000)
    wav = torch.from_numpy(np.tile(clip.samples, 3)).float()
    mel = MelSpectrogram()
    whole = mel(wav)
    calls = []
    real_stft = torch.stft
    monkeypatch.setattr(torch, "stft", lambda *a, **k: calls.append(1) or real_stft(*a, **k))
    mel.chunk_frames = 97  # an odd size, so the last chunk is partial
    chunked = mel(wav)
    assert len(calls) == -(-whole.shape[-1] // 97)
    assert chunked.shape == whole.shape and torch.allclose(chunked, whole, atol=1e-5)
