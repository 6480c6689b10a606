"""Bitrate of discrete unit sequences, as ZeroSpeech 2020 defines it.

    bitrate = (total symbols / total duration in seconds) * H,   H = -sum_u p(u) log2 p(u)

with p(u) the frequency of unit u over the whole set (all utterances pooled), in bits per
second. A symbol is one element of a 1-D sequence, or one row of a 2-D (frames, levels) array
(several codebooks per frame make one joint symbol). ZeroSpeech 2020 scores the sequences as
submitted, so repeated consecutive units are kept by default (dedupe=False); dedupe=True
collapses each run of a repeated unit into one symbol first, which lowers the symbol count,
while the durations stay those of the audio. A set using one unit only has bitrate 0.
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable, Mapping, Sequence

import numpy as np

Units = Sequence[Hashable] | np.ndarray


def _symbols(sequence: Units, dedupe: bool) -> list[Hashable]:
    """The symbols of one sequence: its elements, or the rows of a 2-D array as tuples."""
    arr = np.asarray(sequence)
    if arr.ndim > 2:
        raise ValueError(f"a unit sequence is 1-D or 2-D (frames, levels), got {arr.shape}")
    symbols = [tuple(row) for row in arr.tolist()] if arr.ndim == 2 else arr.tolist()
    if dedupe:
        symbols = [s for k, s in enumerate(symbols) if k == 0 or s != symbols[k - 1]]
    return symbols


def _pooled(sequences: Sequence[Units] | Mapping[str, Units], dedupe: bool) -> Counter:
    values = sequences.values() if isinstance(sequences, Mapping) else sequences
    counts: Counter = Counter()
    for seq in values:
        counts.update(_symbols(seq, dedupe))
    return counts


def unit_entropy(sequences: Sequence[Units] | Mapping[str, Units], dedupe: bool = False) -> float:
    """H in bits of the unit distribution pooled over all sequences (0 for no symbols)."""
    return _entropy(_pooled(sequences, dedupe))


def _entropy(pooled: Counter) -> float:
    counts = np.array(list(pooled.values()), dtype=np.float64)
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    return float(max(0.0, -(p * np.log2(p)).sum()))  # max: no -0.0 for one unit


def bitrate(sequences: Sequence[Units] | Mapping[str, Units],
            durations_s: Sequence[float] | Mapping[str, float], dedupe: bool = False) -> float:
    """Bits per second of the unit sequences: symbols per second over the whole set times the
    entropy of the pooled unit distribution.

    sequences: one unit sequence per utterance, a list or utterance id -> sequence;
    durations_s: the utterances' durations in seconds, in the same order or by the same ids.
    """
    if isinstance(sequences, Mapping) != isinstance(durations_s, Mapping):
        raise TypeError("give sequences and durations both as lists or both as mappings")
    if isinstance(sequences, Mapping):
        if set(sequences) != set(durations_s):
            raise ValueError("sequences and durations_s must have the same utterance ids")
        total_s = float(sum(durations_s[k] for k in sequences))
    else:
        if len(sequences) != len(durations_s):
            raise ValueError(f"{len(sequences)} sequences but {len(durations_s)} durations")
        total_s = float(sum(durations_s))
    if total_s <= 0:
        raise ValueError("the total duration must be positive")
    pooled = _pooled(sequences, dedupe)
    return sum(pooled.values()) / total_s * _entropy(pooled)
