"""Verification, intelligibility and intonation metrics on inputs whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from eval.intelligibility import error_rates, normalize_text
from eval.metrics import f0_contour, log_f0_agreement
from eval.verification import accept_rate, equal_error_rate


def test_equal_error_rate_known_answers():
    eer, threshold = equal_error_rate([0.9, 0.8, 0.95], [0.1, 0.2, 0.3])
    assert eer == 0.0 and 0.3 < threshold <= 0.8
    assert accept_rate([0.9, 0.8, 0.95], threshold) == 1.0
    assert accept_rate([0.1, 0.2, 0.3], threshold) == 0.0
    # Indistinguishable scores: half the errors either way.
    eer, _ = equal_error_rate([0.5] * 10, [0.5] * 10)
    assert eer == pytest.approx(0.5)
    # One genuine pair scores below one impostor pair of four each: EER 1/4.
    eer, _ = equal_error_rate([0.9, 0.8, 0.7, 0.2], [0.1, 0.3, 0.4, 0.75])
    assert eer == pytest.approx(0.25)
    with pytest.raises(ValueError):
        equal_error_rate([], [0.1])


def test_error_rates_on_perfect_empty_and_unnormalised_transcripts():
    assert error_rates(["the cat sat"], ["the cat sat"]) == {"wer": 0.0, "cer": 0.0, "words": 3}
    assert error_rates(["The cat, sat!"], ["the cat sat"])["wer"] == 0.0
    assert error_rates(["the cat sat"], [""])["wer"] == 1.0
    assert error_rates(["the cat sat", "on a mat"], ["the cat sat", "on the mat"])["wer"] == \
        pytest.approx(1 / 6)
    assert normalize_text("Don't—stop, \"now\"") == "do not stop now"
    with pytest.raises(ValueError, match="empty"):
        error_rates(["..."], ["x"])
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rates(["a", "b"], ["a"])


@pytest.mark.parametrize("reference, hypothesis", [
    ("Mister Smith paid five dollars", "Mr. Smith paid $5"),            # titles, numbers, currency
    ("in nineteen ninety", "in 1990"),                                    # years
    ("twenty-one people", "21 people"),                                   # hyphenated numbers
    ("one hundred and twenty three", "123"),
    ("the second bow", "the 2nd bow"),                                    # ordinals
    ("the colour of the harbour", "the color of the harbor"),            # British / US spelling
    ("a well-known super-imposition", "a well known super imposition"),  # hyphens
    ("Doctor Who, O.K.?", "dr who okay"),
    ("uh, yes", "yes"),                                                   # fillers
])
def test_whisper_style_normalisation_makes_equal_readings_equal(reference, hypothesis):
    assert normalize_text(reference) == normalize_text(hypothesis)
    assert error_rates([reference], [hypothesis])["wer"] == 0.0


def test_normalisation_keeps_real_differences():
    assert error_rates(["six spoons of fresh snow peas"], ["6 spoons of fresh snow pies"])["wer"] == \
        pytest.approx(1 / 6)
    assert normalize_text("two cats") != normalize_text("three cats")


def _sung(f0_track: np.ndarray, sample_rate: int = 16000, hop: int = 256) -> np.ndarray:
    """A harmonic tone following an F0 track given per frame."""
    f0 = np.repeat(f0_track, hop)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    return sum(np.sin(k * phase) / k for k in range(1, 6)).astype(np.float32) * 0.3


def test_log_f0_agreement_keeps_melody_not_register():
    frames = 120
    melody = 140 * 2 ** (np.sin(np.linspace(0, 3 * np.pi, frames)) / 3)
    source = f0_contour(_sung(melody), 16000)
    assert len(source) == frames + 1  # centred frames: one more than whole hops
    assert np.nanmedian(np.abs(source[10:frames - 10] / melody[10:-10] - 1)) < 0.02  # pYIN tracks it
    # The same melody an octave up: nothing lost.
    same = log_f0_agreement(source, f0_contour(_sung(melody * 2), 16000))
    assert same["corr"] > 0.99 and same["rmse_semitones"] < 0.3
    # A different melody: the shape is lost.
    other = 140 * 2 ** (np.cos(np.linspace(0, 7 * np.pi, frames)) / 3)
    different = log_f0_agreement(source, f0_contour(_sung(other), 16000))
    assert different["corr"] < 0.5 and different["rmse_semitones"] > 1.0
    with pytest.raises(ValueError, match="voiced"):
        log_f0_agreement(np.full(10, np.nan), source[:10])


def test_pocketsphinx_hears_real_speech_and_not_reversed_speech(real_speech):
    """On real VCTK clips the offline recogniser gets a fair share of words right (its WER
    there is ~0.35-0.9 per clip), and time-reversed speech, which has no words, scores worse."""
    from eval.asr import load_recogniser
    from vc.audio import Audio, prepare_speech
    from vc.data import read_corpus
    asr = load_recogniser("pocketsphinx")
    utterances = sorted(read_corpus(real_speech / "vctk"), key=lambda u: str(u.path))[:3]
    clips = [prepare_speech(u.path, 16000) for u in utterances]
    texts = [u.text for u in utterances]
    forward = error_rates(texts, [asr.transcribe(c) for c in clips])
    backward = error_rates(texts, [asr.transcribe(Audio(c.samples[::-1].copy(), 16000)) for c in clips])
    assert forward["wer"] < 0.75 and backward["wer"] > 0.9
    assert forward["wer"] < backward["wer"] - 0.2
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_recogniser("nonesuch")
