"""Signal-level metrics: each a small pure function on arrays, tested on known answers.

- `mel_l1`: mean absolute difference of two log-mels of equal settings (nats).
- `mel_cepstra` / `mel_cepstral_distortion`: MCD in dB between DTW-aligned mel-cepstra.

MCD here is computed from the 80-band natural-log mel magnitudes every voicelab model uses.
The mel-cepstrum is the real cepstrum of that log spectrum on its mel axis: with M bands,
c_d = (1/M) * sum_m L_m cos(pi d (m + 1/2) / M) (the DCT-II divided by 2M), so a log-spectral
ripple a*cos(...) of quefrency d has c_d = a/2, the scale of SPTK/WORLD mel-cepstra. c1..c24 are
compared (c0, the level, is left out) and MCD = (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2),
averaged over the DTW path. SPTK mel-cepstra (pysptk, which would need a compiler here) warp
frequency with an all-pass filter rather than mel bands, so published figures are comparable
in scale, not to the decimal.
"""
from __future__ import annotations

import math

import librosa
import numpy as np
from scipy.fft import dct
from scipy.spatial.distance import cdist

from vc.pitch import f0_contour  # noqa: F401 - part of this module's API (intonation metrics)

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_l1(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean |a - b| of two log-mels (n_mels, frames); the longer is cut to the shorter."""
    frames = min(reference.shape[-1], estimate.shape[-1])
    if frames == 0:
        raise ValueError("mel_l1 needs at least one frame in each mel")
    return float(np.mean(np.abs(reference[..., :frames] - estimate[..., :frames])))


def mel_cepstra(log_mel: np.ndarray, order: int = 24) -> np.ndarray:
    """Mel-cepstral coefficients c1..c`order` (frames, order) of a log-mel (n_mels, frames)."""
    log_mel = np.asarray(log_mel, dtype=np.float64)
    return (dct(log_mel, type=2, axis=0) / (2 * log_mel.shape[0]))[1:order + 1].T


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The minimum-cost alignment of frame sequences a (N, D) and b (M, D), Euclidean cost,
    as index pairs (K, 2) from start to end."""
    _, path = librosa.sequence.dtw(C=cdist(a, b), backtrack=True)
    return path[::-1]


def mel_cepstral_distortion(reference_log_mel: np.ndarray, estimate_log_mel: np.ndarray,
                            order: int = 24, align: bool = True) -> float:
    """MCD in dB between two utterances given as log-mels, after DTW alignment (or frame by
    frame, cut to the shorter, with align=False)."""
    a, b = mel_cepstra(reference_log_mel, order), mel_cepstra(estimate_log_mel, order)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("mel_cepstral_distortion needs at least one frame in each mel")
    if align:
        path = dtw_path(a, b)
        a, b = a[path[:, 0]], b[path[:, 1]]
    else:
        frames = min(len(a), len(b))
        a, b = a[:frames], b[:frames]
    return float(MCD_SCALE * np.mean(np.sqrt(np.sum((a - b) ** 2, axis=1))))


def log_f0_agreement(source_f0: np.ndarray, output_f0: np.ndarray) -> dict[str, float]:
    """How well an output keeps the source's intonation.

    Over frames voiced in both contours (cut to the shorter; conversion keeps timing), the
    output's log-F0 is shifted and scaled to the source's mean and variance, so a change of
    voice (register) costs nothing and only the shape of the melody counts.

    Returns:
        corr: Pearson correlation of the two log-F0 contours.
        rmse_semitones: RMSE after mean/variance matching, in semitones.
        voiced_frames: frames compared.
    """
    n = min(len(source_f0), len(output_f0))
    a, b = np.asarray(source_f0[:n], float), np.asarray(output_f0[:n], float)
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if both.sum() < 3:
        raise ValueError(f"only {int(both.sum())} frames are voiced in both contours; "
                         "need at least 3 to compare intonation")
    la, lb = np.log2(a[both]), np.log2(b[both])
    spread_a, spread_b = la.std(), lb.std()
    corr = float(np.corrcoef(la, lb)[0, 1]) if spread_a > 0 and spread_b > 0 else 0.0
    matched = (lb - lb.mean()) / (spread_b or 1.0) * spread_a + la.mean()
    return {"corr": corr, "rmse_semitones": float(12 * np.sqrt(np.mean((matched - la) ** 2))),
            "voiced_frames": int(both.sum())}
