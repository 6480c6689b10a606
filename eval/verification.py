"""Speaker verification figures: the equal-error-rate threshold and accept rates.

The threshold is measured once on genuine (same speaker) and impostor (different speakers)
pairs of real utterances; a converted utterance is then "accepted" as the target speaker when
its similarity to the target reference reaches that threshold.
"""
from __future__ import annotations

import numpy as np


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(EER, threshold) from similarity scores of genuine and impostor pairs.

    A pair is accepted when its score >= threshold. Over every candidate threshold (each
    observed score), the false-accept rate (impostors accepted) and false-reject rate
    (genuine pairs rejected) are computed; the EER is their mean where they are closest.
    """
    genuine, impostor = np.asarray(genuine, float), np.asarray(impostor, float)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    candidates = np.unique(np.concatenate([genuine, impostor, [np.inf]]))
    far = np.array([(impostor >= t).mean() for t in candidates])
    frr = np.array([(genuine < t).mean() for t in candidates])
    best = int(np.argmin(np.abs(far - frr)))
    return float((far[best] + frr[best]) / 2), float(candidates[best])


def accept_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of scores at or above the threshold."""
    scores = np.asarray(scores, float)
    if scores.size == 0:
        raise ValueError("no scores")
    return float((scores >= threshold).mean())
