"""Fundamental frequency (F0) per mel frame, and its speaker-free form.

`f0_contour` tracks F0 with pYIN (librosa), frame i centred on sample i * hop like the mel
frames. `normalized_log_f0` turns a contour into what a content model may carry: log-F0 as a
z-score over the utterance's voiced frames (the melody without the speaker's register) and a
voiced flag.
"""
from __future__ import annotations

import librosa
import numpy as np


def f0_contour(samples: np.ndarray, sample_rate: int, hop_length: int = 256,
               fmin: float = 50.0, fmax: float = 600.0, resolution: float = 0.25) -> np.ndarray:
    """F0 in Hz per frame (pYIN), NaN where unvoiced; frame i is centred on sample i * hop.

    `resolution` is pYIN's pitch grid in semitones. 0.25 instead of librosa's 0.1 makes it
    about 6x faster (its Viterbi runs over the grid) and moved F0 by 0.07 semitone on average
    on a 4 s test clip, far below what intonation agreement resolves.
    """
    f0, _, _ = librosa.pyin(np.asarray(samples, dtype=np.float32), fmin=fmin, fmax=fmax,
                            sr=sample_rate, frame_length=4 * hop_length, hop_length=hop_length,
                            resolution=resolution)
    return f0


def normalized_log_f0(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z-scored log-F0, voiced 0/1) per frame from a contour with NaN where unvoiced.

    Unvoiced frames get 0; an utterance with fewer than two voiced frames is all zeros.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.isfinite(f0) & (f0 > 0)
    z = np.zeros(f0.shape, dtype=np.float32)
    if voiced.sum() >= 2:
        log = np.log(f0[voiced])
        z[voiced] = (log - log.mean()) / max(log.std(), 1e-3)
    return z, voiced.astype(np.float32)
