"""The harmonic-plus-noise vocoder: its oscillators on known answers, a real clip learned, and
its training run as a user runs it (F0 labels, exact resume, a run folder as the chain's vocoder)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from test_vocoder_training import assert_resynthesizes
from test_vocoder_training import train as train_vocoder
from training.gan import MultiResolutionMelLoss, MultiResolutionSTFTLoss
from vc.audio import prepare_speech
from vc.mel import MelConfig, MelSpectrogram
from vc.pipeline import load_vocoder
from vc.pitch import f0_contour
from vc.vocoders import HarmonicNoiseVocoder
from vc.vocoders.ddsp import frames_to_samples

pytestmark = pytest.mark.usefixtures("one_thread")


def test_frames_to_samples_puts_frame_t_at_sample_t_times_hop():
    x = torch.tensor([[0.0, 4.0, 8.0]])
    out = frames_to_samples(x, 4)
    assert out.shape == (1, 12)
    assert out[0, :9].tolist() == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert out[0, 9:].tolist() == [8.0, 8.0, 8.0]  # the last frame is held


def test_excitation_is_every_harmonic_below_nyquist():
    """The closed form equals the explicit sum of sines, holds K harmonics of 200 Hz up to the
    cap, and none past Nyquist at 400 Hz."""
    model = HarmonicNoiseVocoder.from_preset("tiny")  # at most 24 harmonics
    frames, hop = 63, 256
    f0 = torch.full((1, frames), 200.0)
    excitation = model.excitation(f0)[0].numpy()
    t = np.arange(frames * hop) / 16000
    explicit = sum(np.sin(2 * np.pi * k * 200.0 * t) for k in range(1, 25))
    assert np.allclose(excitation, explicit, atol=2e-3)
    high = model.excitation(f0 * 2)[0].numpy()  # 400 Hz: 19 harmonics below 0.98 x Nyquist
    spectrum = np.abs(np.fft.rfft(high * np.hanning(len(high))))
    freqs = np.fft.rfftfreq(len(high), 1 / 16000)
    assert spectrum[np.abs(freqs - 7600) < 20].max() > 0.1 * spectrum.max()
    assert spectrum[freqs > 7800].max() < 1e-3 * spectrum.max()


def test_filtered_harmonics_keep_the_pitch_they_are_given():
    """A flat harmonic envelope at 200 Hz for 1 s: pYIN finds 200 Hz in the output; a rising
    F0 glides without a click (no sample-to-sample jump above the signal's own slope)."""
    model = HarmonicNoiseVocoder.from_preset("tiny").eval()
    frames = 63
    envelope = torch.full((1, model.harmonic_bins, frames), -3.0)
    steady = model.harmonic_part(torch.full((1, frames), 200.0), envelope)[0].numpy()
    pitch = f0_contour(steady, 16000)
    assert np.nanmedian(pitch[5:-5]) == pytest.approx(200.0, rel=0.02)
    glide = model.excitation(torch.linspace(100, 300, frames)[None])[0].numpy()
    steps = np.abs(np.diff(glide))
    assert steps.max() < 2 * np.percentile(steps, 99.9)


def test_inference_is_reproducible_and_keeps_the_length():
    model = HarmonicNoiseVocoder.from_preset("tiny").eval()
    mel = torch.randn(80, 40)
    a, b = model.generate(mel), model.generate(mel)
    assert a.shape == (40 * 256,) and torch.equal(a, b)
    several = model.generate([mel, mel[:, :25]])
    assert [w.shape[-1] for w in several] == [40 * 256, 25 * 256]
    # noise_scale 0 leaves the filtered harmonics alone, at inference only
    quiet = HarmonicNoiseVocoder.from_preset("tiny", noise_scale=0.0).eval()
    quiet.load_state_dict(model.state_dict())
    controls = model.controls(mel[None])
    harmonic = model.harmonic_part(controls["f0"], controls["harmonic"])[0]
    assert torch.allclose(quiet.generate(mel), harmonic) and not torch.allclose(a, harmonic)
    assert not torch.allclose(quiet.train()(mel), harmonic.detach())


def test_stft_loss_on_known_answers():
    wav = torch.randn(2, 8192) * 0.1
    loss = MultiResolutionSTFTLoss()
    assert loss(wav, wav).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(wav * 0.5, wav).item() > 0.5


def test_learns_a_real_clip_and_its_pitch(real_speech):
    """The tiny preset on a real VCTK clip, teacher-forced with pYIN's F0: the spectral loss
    falls by a third and the F0 head's error by half."""
    torch.manual_seed(0)
    clip = prepare_speech(sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0], 16000)
    wav = clip.to_tensor()[: 48 * 256 * 2].reshape(2, -1)
    mel = MelSpectrogram(MelConfig())(wav)[..., :48]
    f0 = torch.from_numpy(np.nan_to_num(np.stack([f0_contour(w.numpy(), 16000)[:48] for w in wav])))
    f0 = f0.float()
    filled = torch.where(f0 > 0, f0, f0[f0 > 0].median())
    model = HarmonicNoiseVocoder.from_preset("tiny")
    mel_loss, stft_loss = MultiResolutionMelLoss(MelConfig()), MultiResolutionSTFTLoss()
    optimizer = torch.optim.AdamW(model.parameters(), 3e-3)
    history, pitch_error = [], []
    for _ in range(150):
        out, controls = model(mel, f0=filled, return_controls=True)
        spectral = mel_loss(out, wav) + stft_loss(out, wav)
        pitch = model.f0_loss(controls["f0"], f0)
        optimizer.zero_grad()
        (spectral + pitch).backward()
        optimizer.step()
        history.append(spectral.item())
        pitch_error.append(pitch.item())
    assert history[-1] < 0.67 * history[0]
    assert pitch_error[-1] < 0.5 * pitch_error[0]  # it starts near 173 Hz, this voice's register


# ------------------------------------------------------------------------------------- the CLI
def train(data, out, steps, cache, *extra):
    """The vocoder CLI's tiny run (no discriminators: this vocoder trains on spectral losses)."""
    return train_vocoder(data, out, steps, cache, *extra, family="ddsp", adversarial_start=10**9)


def logged(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return {int(r["step"]): r for r in csv.DictReader(handle)}


def test_train_resume_and_vocode(real_speech, tmp_path):
    data, cache = [real_speech / "vctk"], tmp_path / "cache"
    whole = tmp_path / "whole"
    result = train(data, whole, 4, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(cache.glob("*.f0.npz")), "the F0 labels are cached"
    split = tmp_path / "split"
    assert train(data, split, 2, cache).returncode == 0
    resumed = train(data, split, 4, cache, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole_log, split_log = logged(whole), logged(split)
    assert sorted(whole_log) == [1, 2, 3, 4]
    assert {"stft", "f0_semitones", "val_mel_l1"} <= set(whole_log[4])
    assert [float(split_log[s]["loss"]) for s in range(1, 5)] == pytest.approx(
        [float(whole_log[s]["loss"]) for s in range(1, 5)], rel=1e-5)
    card = (whole / "model" / "README.md").read_text()
    assert "Harmonic-plus-noise" in card
    assert "discriminator_width" not in card and "adversarial_start" not in card  # none trained

    # The run folder is a vocoder for the CLI and load_vocoder.
    assert isinstance(load_vocoder(whole, MelConfig()), HarmonicNoiseVocoder)
    assert_resynthesizes(whole, real_speech, tmp_path)
