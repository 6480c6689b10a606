"""DNSMOS on real clean speech against the same speech in white noise at 0 dB SNR."""
from __future__ import annotations

import numpy as np
import pytest

from eval.naturalness import DnsMos
from vc.audio import Audio, load_audio
from vc.errors import AudioError


@pytest.fixture(scope="module")
def rater():
    return DnsMos(threads=2)


def _with_noise(clip: Audio, snr_db: float, seed: int = 0) -> Audio:
    samples = clip.resample(16000).samples.astype(np.float64)
    noise = np.random.default_rng(seed).standard_normal(samples.size)
    noise *= np.sqrt(np.mean(samples ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    noisy = samples + noise
    return Audio((noisy / np.abs(noisy).max() * 0.9).astype(np.float32), 16000)


def test_noise_lowers_dnsmos_on_real_speech(rater, real_speech):
    clips = [real_speech / "vctk" / "p225" / "p225_003.wav", real_speech / "vctk" / "p226" / "p226_005.wav",
             real_speech / "ljspeech" / "wavs" / "LJ001-0001.flac"]
    for path in clips:
        clean = load_audio(path)
        scores, noisy = rater.rate(clean), rater.rate(_with_noise(clean, 0.0))
        assert set(scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
        assert all(1.0 <= v <= 5.0 for v in scores.values()), scores
        assert noisy["dnsmos_ovrl"] < scores["dnsmos_ovrl"] - 0.5, (path.name, scores, noisy)
        assert noisy["dnsmos_bak"] < scores["dnsmos_bak"], path.name


def test_bad_input_is_refused(rater):
    with pytest.raises(ValueError, match="at least 0.1 s"):
        rater.rate((16000, np.zeros(100, dtype=np.float32)))
    with pytest.raises(AudioError, match="NaN"):
        rater.rate(Audio(np.full(16000, np.nan, dtype=np.float32), 16000))
