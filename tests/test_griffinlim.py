"""Griffin-Lim turns a real mel back into speech that sounds like the same speaker."""
from __future__ import annotations

import torch

from vc.audio import prepare_speech
from vc.mel import MelConfig, MelSpectrogram
from vc.speaker import cosine
from vc.vocoders import GriffinLim


def test_resynthesis_keeps_the_spectrum_and_the_voice(test_other, speaker_encoder):
    config = MelConfig()
    audio = prepare_speech(test_other["1998"][0], config.sample_rate)
    mel_fn = MelSpectrogram(config)
    mel = mel_fn(torch.from_numpy(audio.samples))
    wav = GriffinLim(config, n_iter=32)(mel)
    assert wav.shape == ((mel.shape[-1] - 1) * config.hop_length,)
    assert wav.abs().max() <= 1.0
    again = mel_fn(wav)
    frames = min(again.shape[-1], mel.shape[-1])
    error = (again[:, :frames] - mel[:, :frames]).abs().mean().item()
    assert error < 0.2  # nats; random phase alone gives about 1.5
    similarity = cosine(speaker_encoder.embed(audio),
                        speaker_encoder.embed(wav.numpy(), source_rate=config.sample_rate))
    assert similarity > 0.8


def test_batched_equals_one_by_one(test_other):
    config = MelConfig(compression="db", fmin=90.0, fmax=7600.0)
    mel_fn = MelSpectrogram(config)
    clips = [prepare_speech(f, 16000).samples[:16000] for f in test_other["2414"][:2]]
    mels = mel_fn(torch.stack([torch.from_numpy(c) for c in clips]))
    vocoder = GriffinLim(config, n_iter=8)
    batch = vocoder(mels)
    for i in range(2):
        assert torch.allclose(batch[i], vocoder(mels[i]), atol=1e-4)
