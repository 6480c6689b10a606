"""Speaker verification figures that need nothing but numbers: the equal error rate of
genuine and impostor scores, and the all-pairs trials of a set of labelled embeddings.

Moved here from `eval.verification` (which imports `equal_error_rate` from here) so that
training, which may import `vc` but not `eval`, measures speaker encoders the same way.
"""
from __future__ import annotations

from typing import Sequence

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
    # Sorted scores give each candidate's accept counts in one pass (same values as counting).
    far = (impostor.size - np.searchsorted(np.sort(impostor), candidates, side="left")) / impostor.size
    frr = np.searchsorted(np.sort(genuine), candidates, side="left") / genuine.size
    best = int(np.argmin(np.abs(far - frr)))
    return float((far[best] + frr[best]) / 2), float(candidates[best])


def pair_scores(embeddings: np.ndarray, speakers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every unordered pair of clips: (genuine, impostor).

    Args:
        embeddings: (N, D) clip embeddings (any norm; they are normalised here).
        speakers: the N clips' speaker labels.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(list(speakers))
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"need (N, D) embeddings and N speaker labels, got {embeddings.shape} "
                         f"and {len(labels)} labels")
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    scores = unit @ unit.T
    upper = np.triu_indices(len(labels), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    return scores[upper][same], scores[upper][~same]


def all_pairs_eer(embeddings: np.ndarray, speakers: Sequence[str]) -> dict[str, float]:
    """EER over every pair of clips (each clip scored against each other clip).

    Returns {"eer", "threshold", "genuine_pairs", "impostor_pairs", "speakers", "clips"};
    ValueError when there is no same-speaker pair or no different-speaker pair.
    """
    genuine, impostor = pair_scores(embeddings, speakers)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"an EER needs two clips of one speaker and clips of two speakers; got "
                         f"{len(speakers)} clips of {len(set(speakers))} speaker(s)")
    eer, threshold = equal_error_rate(genuine, impostor)
    return {"eer": eer, "threshold": threshold, "genuine_pairs": int(genuine.size),
            "impostor_pairs": int(impostor.size), "speakers": len(set(speakers)),
            "clips": len(speakers)}
