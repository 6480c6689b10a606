"""Signal metrics on inputs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from eval.metrics import MCD_SCALE, dtw_path, mel_cepstra, mel_cepstral_distortion, mel_l1


def test_mel_l1_known_values():
    a = np.zeros((80, 10))
    assert mel_l1(a, a) == 0.0
    assert mel_l1(a, a + 0.25) == pytest.approx(0.25)
    assert mel_l1(a, np.zeros((80, 7))) == 0.0  # cut to the shorter
    with pytest.raises(ValueError):
        mel_l1(a, np.zeros((80, 0)))


def test_mcd_is_zero_for_the_same_signal_and_ignores_level():
    rng = np.random.default_rng(0)
    mel = rng.normal(size=(80, 60))
    assert mel_cepstral_distortion(mel, mel) == 0.0
    # A level change moves c0 only, which MCD leaves out.
    assert mel_cepstral_distortion(mel, mel + 3.0) == pytest.approx(0.0, abs=1e-9)


def test_mcd_of_a_known_cepstral_difference():
    rng = np.random.default_rng(1)
    mel = rng.normal(size=(80, 40))
    # A log-spectral ripple 0.2 * cos(pi * 1 * (m + 1/2) / M) is a real-cepstrum c1 of 0.1 (the
    # SPTK scale): the distance per frame is 0.1, so MCD is 0.1 * scale.
    bands = np.arange(80)
    ripple = lambda d, a: a * np.cos(np.pi * d * (bands + 0.5) / 80)[:, None]
    assert mel_cepstra(ripple(1, 0.2))[0, 0] == pytest.approx(0.1)
    assert mel_cepstral_distortion(mel, mel + ripple(1, 0.2), align=False) == pytest.approx(0.1 * MCD_SCALE)
    # c25 and above are not compared.
    assert mel_cepstral_distortion(mel, mel + ripple(30, 2.0)) == pytest.approx(0.0, abs=1e-9)


def test_dtw_undoes_a_time_stretch():
    rng = np.random.default_rng(2)
    mel = rng.normal(size=(80, 50))
    slow = np.repeat(mel, 2, axis=1)  # every frame twice
    assert mel_cepstral_distortion(mel, slow) == pytest.approx(0.0, abs=1e-9)
    assert mel_cepstral_distortion(mel, slow, align=False) > 1.0
    path = dtw_path(mel_cepstra(mel), mel_cepstra(slow))
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (49, 99)
    other = rng.normal(size=(80, 50))
    assert mel_cepstral_distortion(mel, other) > 2.0
