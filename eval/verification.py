"""Speaker verification figures: the equal-error-rate threshold and accept rates.

The threshold is measured once on genuine (same speaker) and impostor (different speakers)
pairs of real utterances; a converted utterance is then "accepted" as the target speaker when
its similarity to the target reference reaches that threshold.
"""
from __future__ import annotations

import numpy as np

# The pure EER function lives in vc (training measures encoders with it too); re-exported here.
from vc.verification import equal_error_rate

__all__ = ["equal_error_rate", "accept_rate"]


def accept_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of scores at or above the threshold."""
    scores = np.asarray(scores, float)
    if scores.size == 0:
        raise ValueError("no scores")
    return float((scores >= threshold).mean())
