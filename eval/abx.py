"""ABX phone discrimination error, as ZeroSpeech 2017/2020 and Libri-light define it.

An *item* is one phone occurrence with its triphone context: (file, onset, offset, phone,
previous phone, next phone, speaker). An ABX triple (A, B, X) takes A and X of the same phone
and B of another phone, all three in the same context (same previous and next phone). The
triple is an error when X is closer to B than to A, d(A, X) > d(B, X); a tie counts 0.5.

- within speaker: A, B and X all come from one speaker, and X is never A itself;
- across speaker: A and B come from one speaker, X (same phone as A) from another one.

A *cell* is (context, speaker(s), ordered phone pair (c1, c2)) with c1 the phone of A and X;
its score is the error fraction over all its triples.

By default this module computes what Libri-light's eval_ABX and its fork zerospeech-libriabx2
(the `zrc_abx2` package the ZeroSpeech benchmark tools use) compute, frame selection and
averaging order included, so that its scores can be set beside published Libri-light and
ZeroSpeech ABX numbers; scripts/abx_agreement.py checks that it agrees with the package to
1e-6. Two options keep alternative conventions, more regular but giving different numbers:

Averaging (`across_averaging`). Cells are averaged in three steps:

1. within speaker: over contexts, for each (speaker, c1, c2);
   across speaker, "libri-light" (default): over (context, speaker_X) jointly, for each
   (speaker_AB, c1, c2); "speaker-pairs": over contexts, for each (speaker_AB, speaker_X,
   c1, c2), so that every speaker pair weighs the same;
2. over speakers (within; across "libri-light": speaker_AB) or over (speaker_AB, speaker_X)
   pairs (across "speaker-pairs"), for each (c1, c2);
3. over ordered phone pairs: (c1, c2) and (c2, c1) both count, which symmetrises the score.

The two across orders agree whenever every speaker_AB meets each of its X speakers in the same
number of contexts (for instance when all speakers share all contexts); otherwise
"libri-light" weights a speaker pair by how many contexts it shares.

Frames (`frame_selection`). Feature frame i of an utterance is centred at
(i + 0.5) / frame_rate + time_offset seconds (Libri-light's convention with time_offset = 0).
With r = frame_rate and times taken relative to time_offset:
- "libri-light" (default): the frames [ceil(r * onset - 0.5), floor(r * offset - 0.5)), with
  Libri-light's own floating-point arithmetic and no tolerance. That is the frames centred in
  [onset, offset - 1 / r]: of those centred in [onset, offset], the last one is dropped, so an
  item spanning a single frame centre gets no frame (at 100 frames/s and 10 ms aligned times,
  a k-frame phone keeps k - 1 frames and a 10 ms phone is left out). A centre lying exactly on
  an edge is in or out as the float product falls, as in Libri-light;
- "inclusive": every frame centred in [onset, offset], both ends included (with a 1e-9
  tolerance, so centres exactly on an edge stay inside).
Items with no frame are left out and counted, as Libri-light leaves them out.

Sampling (max_group, max_x_speakers) is repeatable (seed) but does not reproduce Libri-light's
draws, which use Python's random module and redraw a group each time it is used; the scores
agree when nothing is sampled. Note that Libri-light and zrc_abx2 sample by default
(max_size_group=10, max_x_across=5); here nothing is sampled unless asked.

Distances: frame distances are "angular" (arccos of the cosine similarity, over pi, in [0, 1];
a null frame is at distance 1 from any other frame and 0 from another null frame, as in
Libri-light) or "kl" (symmetric Kullback-Leibler divergence in nats of posteriorgram rows). The
item distance is the cost of the minimum-total-cost DTW path (steps right, down, diagonal)
divided by that path's length. Both frame distances are symmetric, so d(A, X) = d(X, A).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Collection, Iterable, Mapping, NamedTuple, Sequence

import librosa
import numpy as np

SILENCES = frozenset({"sil", "sp", "spn", "pau", "SIL", "SP", "SPN", "PAU", "", "_", "#"})
ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"
_TIME_EPS = 1e-9  # "inclusive": frame centres exactly on an item edge stay inside
FRAME_SELECTIONS = ("libri-light", "inclusive")
ACROSS_AVERAGINGS = ("libri-light", "speaker-pairs")
_BATCH_ELEMENTS = 2_000_000  # floats per DTW batch array: bounds memory, keeps numpy busy


class AbxItem(NamedTuple):
    """One phone occurrence in its triphone context (times in seconds)."""
    file: str
    onset: float
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str


# ---------------------------------------------------------------- items and .item files

def items_from_alignments(alignments: Mapping[str, Sequence[tuple[float, float, str]]],
                          speakers: Mapping[str, str],
                          silences: Collection[str] = SILENCES,
                          silence_context: str | None = "SIL") -> list[AbxItem]:
    """ABX items from phone alignments.

    alignments: utterance id -> its (start_s, end_s, phone) segments in time order;
    speakers: utterance id -> speaker. The first and last segment of an utterance have no
    full context and are skipped, as are segments labelled with a silence. A silence beside
    an item becomes the context label `silence_context`; with None such items are skipped.
    """
    items = []
    for utt, segments in alignments.items():
        for k in range(1, len(segments) - 1):
            start, end, phone = segments[k]
            if phone in silences:
                continue
            prev, nxt = segments[k - 1][2], segments[k + 1][2]
            if prev in silences or nxt in silences:
                if silence_context is None:
                    continue
                prev = silence_context if prev in silences else prev
                nxt = silence_context if nxt in silences else nxt
            items.append(AbxItem(utt, float(start), float(end), phone, prev, nxt, speakers[utt]))
    return items


def write_item_file(path: str | Path, items: Iterable[AbxItem]) -> None:
    """Write items in the ZeroSpeech `.item` format: a header line, then one item per line."""
    lines = [ITEM_HEADER]
    for it in items:
        labels = (it.file, it.phone, it.prev, it.next, it.speaker)
        if any(not s or any(c.isspace() for c in s) for s in labels):
            raise ValueError(f"item labels must be non-empty and without spaces: {it}")
        # repr of a float is its shortest exact decimal: times round-trip unchanged
        lines.append(f"{it.file} {float(it.onset)!r} {float(it.offset)!r} {it.phone} "
                     f"{it.prev} {it.next} {it.speaker}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_item_file(path: str | Path) -> list[AbxItem]:
    """Read a ZeroSpeech `.item` file (first line is the header and is skipped)."""
    items = []
    for n, line in enumerate(Path(path).read_text().splitlines()[1:], start=2):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 7:
            raise ValueError(f"{path}:{n}: expected 7 fields, got {len(fields)}")
        f, on, off, phone, prev, nxt, spk = fields
        items.append(AbxItem(f, float(on), float(off), phone, prev, nxt, spk))
    return items


def item_frames(features: np.ndarray, onset: float, offset: float, frame_rate: float,
                time_offset: float = 0.0, frame_selection: str = "libri-light") -> np.ndarray:
    """An item's frames (k, dim) of its utterance's features (frames, dim); k may be 0.

    Frame i is centred at (i + 0.5) / frame_rate + time_offset seconds. frame_selection
    "libri-light" (default) takes Libri-light's slice [ceil(r * onset - 0.5),
    floor(r * offset - 0.5)) (r = frame_rate, times relative to time_offset), computed as
    Libri-light computes it: the frames centred in [onset, offset - 1 / r]. "inclusive" takes
    every frame centred in [onset, offset], both ends included.
    """
    start = (onset - time_offset) * frame_rate - 0.5  # index of a frame centred at onset
    end = (offset - time_offset) * frame_rate - 0.5
    if frame_selection == "libri-light":
        first, stop = math.ceil(start), math.floor(end)
    elif frame_selection == "inclusive":
        first, stop = math.ceil(start - _TIME_EPS), math.floor(end + _TIME_EPS) + 1
    else:
        raise ValueError(f"unknown frame_selection {frame_selection!r}; "
                         f"use one of {FRAME_SELECTIONS}")
    first, stop = max(first, 0), min(stop, len(features))
    return features[first:stop] if stop > first else features[:0]


# ---------------------------------------------------------------- distances

def frame_distances(a: np.ndarray, b: np.ndarray, distance: str = "angular") -> np.ndarray:
    """Pairwise frame distances of a (..., N, D) and b (..., M, D) -> (..., N, M).

    "angular": arccos(cosine similarity) / pi. "kl": 0.5 * (KL(p||q) + KL(q||p)) in nats,
    rows taken as probabilities (non-negative; 1e-6 is added and rows renormalised, so
    zeros are allowed).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if distance == "angular":
        na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
        za, zb = na == 0, nb == 0
        cos = np.einsum("...nd,...md->...nm", a / np.where(za, 1, na)[..., None],
                        b / np.where(zb, 1, nb)[..., None])
        # a null frame is maximally far from any frame but another null one
        za, zb = za[..., :, None], zb[..., None, :]
        cos = np.where(za | zb, np.where(za & zb, 1.0, -1.0), cos)
        return np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi
    if distance == "kl":
        if (a < 0).any() or (b < 0).any():
            raise ValueError("kl distance needs non-negative (posteriorgram) frames")
        p, q = a + 1e-6, b + 1e-6
        p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
        lp, lq = np.log(p), np.log(q)
        p_lp, q_lq = (p * lp).sum(-1), (q * lq).sum(-1)
        kl_pq = p_lp[..., :, None] - np.einsum("...nd,...md->...nm", p, lq)
        kl_qp = q_lq[..., None, :] - np.einsum("...nd,...md->...nm", lp, q)
        return np.maximum(0.5 * (kl_pq + kl_qp), 0.0)
    raise ValueError(f"unknown distance {distance!r}; use 'angular' or 'kl'")


def dtw_average_batch(dist: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
    """DTW path-averaged cost of P padded frame-distance matrices dist (P, N, M), of which
    only the top-left (n[p], m[p]) block is real -> (P,).

    The path minimises the total cost (steps (i-1, j), (i, j-1), (i-1, j-1)); its cost is
    then divided by its length, found by backtracking with ties preferring the diagonal,
    then (i, j-1), as Libri-light's dtw does.
    """
    P, N, M = dist.shape
    cost = np.empty_like(dist)
    cost[:, :, 0] = np.cumsum(dist[:, :, 0], axis=1)
    cost[:, 0, :] = np.cumsum(dist[:, 0, :], axis=1)
    for i in range(1, N):  # each cell needs its left neighbour: a loop, batched over pairs
        for j in range(1, M):
            cost[:, i, j] = dist[:, i, j] + np.minimum(
                np.minimum(cost[:, i - 1, j], cost[:, i - 1, j - 1]), cost[:, i, j - 1])
    rows = np.arange(P)
    i, j = np.asarray(n) - 1, np.asarray(m) - 1
    total = cost[rows, i, j]
    length = np.ones(P)
    while True:
        act = (i > 0) & (j > 0)
        if not act.any():
            break
        r, ia, ja = rows[act], i[act], j[act]
        up, left, diag = cost[r, ia - 1, ja], cost[r, ia, ja - 1], cost[r, ia - 1, ja - 1]
        take_diag = (diag <= left) & (diag <= up)
        take_left = ~take_diag & (left <= up)
        take_up = ~take_diag & ~take_left
        i[act] = ia - (take_diag | take_up)
        j[act] = ja - (take_diag | take_left)
        length[act] += 1
    length += i + j  # once an edge is reached the rest of the path runs along it
    return total / length


def dtw_distance(a: np.ndarray, b: np.ndarray, distance: str = "angular") -> float:
    """Item distance of frame sequences a (N, D) and b (M, D): DTW path-averaged frame
    distance."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("dtw_distance needs at least one frame in each sequence")
    d = frame_distances(a, b, distance)[None]
    return float(dtw_average_batch(d, np.array([len(a)]), np.array([len(b)]))[0])


def _pair_distances(slices: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]],
                    distance: str) -> dict[tuple[int, int], float]:
    """DTW distances of item index pairs, in batches of similar lengths (less padding)."""
    pairs = sorted(pairs, key=lambda p: (len(slices[p[0]]), len(slices[p[1]])))
    out: dict[tuple[int, int], float] = {}
    dim = slices[0].shape[1] if slices else 0
    start = 0
    while start < len(pairs):
        stop, big_n, big_m = start, 0, 0
        while stop < len(pairs):
            n2 = max(big_n, len(slices[pairs[stop][0]]))
            m2 = max(big_m, len(slices[pairs[stop][1]]))
            if stop > start and (stop - start + 1) * max(n2 * m2, (n2 + m2) * dim) \
                    > _BATCH_ELEMENTS:
                break
            big_n, big_m, stop = n2, m2, stop + 1
        batch = pairs[start:stop]
        a = np.zeros((len(batch), big_n, dim))
        b = np.zeros((len(batch), big_m, dim))
        n = np.array([len(slices[p]) for p, _ in batch])
        m = np.array([len(slices[q]) for _, q in batch])
        for k, (p, q) in enumerate(batch):
            a[k, :n[k]], b[k, :m[k]] = slices[p], slices[q]
        for pq, d in zip(batch, dtw_average_batch(frame_distances(a, b, distance), n, m)):
            out[pq] = float(d)
        start = stop
    return out


# ---------------------------------------------------------------- ABX

def abx_error(items: Sequence[AbxItem], features: Mapping[str, np.ndarray], frame_rate: float,
              mode: str = "within", distance: str = "angular", time_offset: float = 0.0,
              max_group: int | None = None, max_x_speakers: int | None = None,
              seed: int = 0, frame_selection: str = "libri-light",
              across_averaging: str = "libri-light") -> dict:
    """ABX error (0..1) of features (utterance id -> (frames, dim)) on items.

    mode: "within" or "across" speaker. max_group: at most this many items of each
    (context, speaker, phone) group, drawn at random (Libri-light's max_size_group);
    max_x_speakers: across, at most this many X speakers per A group. Both bound the
    triples per cell; seed makes the draws repeatable.

    frame_selection: "libri-light" (default) or "inclusive", the frames of an item (see
    item_frames). across_averaging: "libri-light" (default) averages across-speaker cells
    over (context, speaker_X) jointly, then over speaker_AB; "speaker-pairs" averages over
    contexts, then over (speaker_AB, speaker_X) pairs (see the module docstring). Within
    speaker the two are the same. The defaults reproduce Libri-light / zerospeech-libriabx2.

    Returns {"error", "n_cells", "n_phone_pairs", "n_items", "n_items_skipped",
    "by_phone_pair": {(c1, c2): error}, "by_cell": {(context, speaker, c1, c2): error}}
    with context = (prev, next) and speaker = (speaker_AB, speaker_X) across. Raises
    ValueError when no cell can be formed.
    """
    if mode not in ("within", "across"):
        raise ValueError(f"unknown mode {mode!r}; use 'within' or 'across'")
    if frame_selection not in FRAME_SELECTIONS:
        raise ValueError(f"unknown frame_selection {frame_selection!r}; "
                         f"use one of {FRAME_SELECTIONS}")
    if across_averaging not in ACROSS_AVERAGINGS:
        raise ValueError(f"unknown across_averaging {across_averaging!r}; "
                         f"use one of {ACROSS_AVERAGINGS}")
    rng = np.random.default_rng(seed)
    slices: list[np.ndarray] = []  # each item's frames, cut once
    groups: dict[tuple, list[int]] = defaultdict(list)
    skipped = 0
    for it in items:
        if it.file not in features:
            raise KeyError(f"no features for utterance {it.file!r}")
        frames = item_frames(np.asarray(features[it.file]), it.onset, it.offset, frame_rate,
                             time_offset, frame_selection)
        if len(frames) == 0:
            skipped += 1
            continue
        groups[((it.prev, it.next), it.speaker, it.phone)].append(len(slices))
        slices.append(np.asarray(frames, dtype=np.float64))
    if max_group is not None:
        for group in sorted(groups):
            if len(groups[group]) > max_group:
                drawn = rng.choice(groups[group], max_group, replace=False)
                groups[group] = sorted(drawn.tolist())

    phones_at: dict[tuple, list[str]] = defaultdict(list)  # (context, speaker) -> phones
    speakers_at: dict[tuple, list[str]] = defaultdict(list)  # (context, phone) -> speakers
    for ctx, spk, ph in sorted(groups):
        phones_at[ctx, spk].append(ph)
        speakers_at[ctx, ph].append(spk)

    # cells as (context, speaker key, c1, c2, A, B, X)
    cells = []
    for (ctx, spk), phones in phones_at.items():
        for c1 in phones:
            a = groups[ctx, spk, c1]
            if mode == "within":
                if len(a) < 2:
                    continue
                x_by_speaker = [(spk, a)]
            else:
                others = [s for s in speakers_at[ctx, c1] if s != spk]
                if max_x_speakers is not None and len(others) > max_x_speakers:
                    others = sorted(rng.choice(others, max_x_speakers, replace=False).tolist())
                x_by_speaker = [((spk, s), groups[ctx, s, c1]) for s in others]
            for c2 in phones:
                if c2 != c1:
                    for spk_key, x in x_by_speaker:
                        cells.append((ctx, spk_key, c1, c2, a, groups[ctx, spk, c2], x))
    if not cells:
        raise ValueError(f"no ABX {mode}-speaker cell: need two phones in one context and "
                         + ("two items of a phone per speaker" if mode == "within"
                            else "a phone said by two speakers"))

    def pair(p: int, q: int) -> tuple[int, int]:  # distances are symmetric: one per pair
        return (p, q) if p <= q else (q, p)

    needed = {pair(p, q) for *_, a, b, x in cells for q in x for p in (*a, *b) if p != q}
    dist = _pair_distances(slices, list(needed), distance)

    by_cell: dict[tuple, float] = {}
    for ctx, spk_key, c1, c2, a, b, x in cells:
        d_ax = np.array([[dist[pair(p, q)] if p != q else np.nan for q in x] for p in a])
        d_bx = np.array([[dist[pair(p, q)] for q in x] for p in b])
        worse = (d_ax[:, None, :] > d_bx[None, :, :]) + 0.5 * (d_ax[:, None, :] == d_bx[None])
        valid = np.broadcast_to(~np.isnan(d_ax)[:, None, :], worse.shape)  # X != A
        by_cell[ctx, spk_key, c1, c2] = float(worse[valid].mean())
    # step 1: within, over contexts per speaker; across "speaker-pairs", over contexts per
    # (speaker_AB, speaker_X); across "libri-light", over (context, speaker_X) per speaker_AB
    joint_x = mode == "across" and across_averaging == "libri-light"
    by_speaker: dict[tuple, list[float]] = defaultdict(list)
    for (_, spk_key, c1, c2), score in by_cell.items():
        by_speaker[spk_key[0] if joint_x else spk_key, c1, c2].append(score)
    by_pair: dict[tuple, list[float]] = defaultdict(list)
    for (_, c1, c2), scores in by_speaker.items():
        by_pair[c1, c2].append(float(np.mean(scores)))
    pair_error = {pq: float(np.mean(s)) for pq, s in by_pair.items()}  # step 2: speakers
    return {"error": float(np.mean(list(pair_error.values()))),  # over phone pairs
            "n_cells": len(cells), "n_phone_pairs": len(pair_error), "n_items": len(slices),
            "n_items_skipped": skipped, "by_phone_pair": pair_error, "by_cell": by_cell}


# ---------------------------------------------------------------- MFCC baseline

def mfcc_features(audio_by_utterance: Mapping[str, np.ndarray], sample_rate: int,
                  n_mfcc: int = 13, deltas: bool = False, hop_s: float = 0.01,
                  win_s: float = 0.025, n_mels: int = 40
                  ) -> tuple[dict[str, np.ndarray], float]:
    """The MFCC baseline: utterance id -> (frames, n_mfcc) features (3 * n_mfcc with deltas
    and delta-deltas), and the frame rate in frames per second.

    Frame i is centred at (i + 0.5) / frame_rate seconds, the convention abx_error assumes
    with time_offset = 0: each window of win_s is padded so that its centre is the middle
    of the i-th hop, and every started hop gets a frame.
    """
    hop, n_fft = round(hop_s * sample_rate), round(win_s * sample_rate)
    out = {}
    for utt, audio in audio_by_utterance.items():
        y = np.asarray(audio, dtype=np.float32).reshape(-1)
        frames = max(1, math.ceil(len(y) / hop))
        left = (n_fft - hop) // 2
        right = max(0, (frames - 1) * hop + n_fft - left - len(y))
        y = np.pad(y, (left, right))
        mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=n_mfcc, n_fft=n_fft,
                                    hop_length=hop, win_length=n_fft, center=False,
                                    n_mels=n_mels)[:, :frames]
        if deltas:  # "nearest" edges work for items shorter than the delta window
            mfcc = np.concatenate([mfcc, librosa.feature.delta(mfcc, order=1, mode="nearest"),
                                   librosa.feature.delta(mfcc, order=2, mode="nearest")])
        out[utt] = mfcc.T.astype(np.float64)
    return out, sample_rate / hop
