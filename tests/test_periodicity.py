"""The periodicity measure on signals with a known answer, and its loss steering a mix."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.periodicity import PeriodicityLoss, periodicity
from vc.audio import prepare_speech
from vc.pitch import f0_contour

SR, HOP, FRAMES = 16000, 256, 60


def tone(f0: float) -> torch.Tensor:
    t = torch.arange(FRAMES * HOP) / SR
    return sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 6))[None]


def test_periodic_share_of_the_power():
    """A harmonic tone at its own period: 1; white noise: 0; the two at equal power: 1/2."""
    torch.manual_seed(0)
    f0 = torch.full((1, FRAMES), 150.0)
    periodic = tone(150.0)
    noise = torch.randn_like(periodic) * periodic.pow(2).mean().sqrt()
    inner = slice(3, -3)  # frames whose window lies inside the signal
    assert periodicity(periodic, f0, HOP, SR)[0, inner].mean().item() == pytest.approx(1.0, abs=0.01)
    assert periodicity(noise, f0, HOP, SR)[0, inner].abs().mean().item() < 0.1
    assert periodicity(periodic + noise, f0, HOP, SR)[0, inner].mean().item() == pytest.approx(0.5, abs=0.08)
    # at the wrong period (a fifth away) the tone is not periodic
    assert periodicity(periodic, f0 * 1.5, HOP, SR)[0, inner].mean().item() < 0.5


def test_real_vowels_are_mostly_periodic(real_speech):
    """A real VCTK clip at pYIN's pitch: voiced frames score well above unvoiced ones."""
    clip = prepare_speech(sorted((real_speech / "vctk" / "p225").glob("*.wav"))[0], SR)
    wav = clip.to_tensor()[None, : HOP * 200]
    f0 = torch.from_numpy(np.nan_to_num(f0_contour(wav[0].numpy(), SR, HOP))).float()[None, :200]
    voiced = f0 > 0
    filled = torch.where(voiced, f0, f0[voiced].median())
    r = periodicity(wav, filled, HOP, SR)
    assert r[voiced].mean() > 0.6 and r[voiced].mean() > r[~voiced].mean() + 0.3


def test_loss_moves_a_whisper_toward_the_voice():
    """The target is the tone with a little noise; the output mixes the tone and a lot of noise.
    The loss is 0 on the target itself and its gradient turns the noise down."""
    torch.manual_seed(0)
    f0 = torch.full((1, FRAMES), 120.0)
    periodic = tone(120.0)
    noise = torch.randn_like(periodic) * periodic.pow(2).mean().sqrt()
    target = periodic + 0.2 * noise
    loss = PeriodicityLoss(HOP, SR)
    assert loss(target, target, f0).item() == pytest.approx(0.0, abs=1e-6)
    gain = torch.tensor(1.0, requires_grad=True)
    value = loss(periodic + gain * noise, target, f0)
    value.backward()
    assert value.item() > 0.3 and gain.grad.item() > 0  # descending the loss lowers the noise
    silent = loss(torch.zeros_like(target), torch.zeros_like(target), f0)
    assert silent.item() == 0.0  # no loud frame: nothing to compare
