"""From per-trial rows to a report's figures: means with 95% confidence intervals.

Every per-trial metric is summarised by its mean over the trials where it applies, with a
percentile bootstrap interval over trials (2000 resamples, fixed seed, so a report is
reproducible). WER and CER pool errors over trials (errors summed / reference words summed,
the usual corpus-level figure) and bootstrap that ratio. The verification accept rate is the
fraction of trials whose similarity to the target reaches the equal-error-rate threshold
measured on the protocol's real clips. Peak memory is the maximum over trials.
"""
from __future__ import annotations

import itertools
from typing import Callable, Mapping, Sequence

import numpy as np

from .verification import equal_error_rate

BOOTSTRAP_RESAMPLES = 2000
RATIO_METRICS = {"wer": ("word_errors", "words"), "cer": ("char_errors", "chars")}


def bootstrap_ci(columns: Sequence[np.ndarray], statistic: Callable[..., np.ndarray],
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float] | None:
    """95% percentile interval of `statistic(*columns)` over trials resampled with
    replacement; `statistic` takes arrays of shape (resamples, n). None for fewer than 2."""
    n = len(columns[0])
    if n < 2:
        return None
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = statistic(*(np.asarray(c, dtype=np.float64)[picks] for c in columns))
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def summarise_metric(name: str, rows: Sequence[Mapping], threshold: float | None = None) -> dict | None:
    """{"value", "ci95", "n"} of one metric over ok rows, or None where no row has it."""
    if name in RATIO_METRICS:
        errors_key, total_key = RATIO_METRICS[name]
        have = [r["metrics"] for r in rows if errors_key in r["metrics"] and r["metrics"].get(total_key)]
        if not have:
            return None
        errors = np.array([m[errors_key] for m in have])
        totals = np.array([m[total_key] for m in have])
        ratio = lambda e, t: e.sum(axis=-1) / t.sum(axis=-1)
        return {"value": float(errors.sum() / totals.sum()), "ci95": bootstrap_ci([errors, totals], ratio),
                "n": len(have)}
    if name == "sv_accept":
        if threshold is None:
            return None
        values = np.array([float(r["metrics"]["secs"] >= threshold) for r in rows if "secs" in r["metrics"]])
    else:
        values = np.array([r["metrics"][name] for r in rows if r["metrics"].get(name) is not None], float)
    if values.size == 0:
        return None
    if name == "peak_mem_mb":
        return {"value": float(values.max()), "ci95": None, "n": int(values.size)}
    return {"value": float(values.mean()), "ci95": bootstrap_ci([values], lambda v: v.mean(axis=-1)),
            "n": int(values.size)}


def summarise_system(metrics: Sequence[str], rows: Sequence[Mapping], threshold: float | None) -> dict:
    """Figures of one system from its rows (failed rows are counted, not scored)."""
    ok = [r for r in rows if r["status"] == "ok"]
    figures = {}
    for name in metrics:
        figure = summarise_metric(name, ok, threshold)
        if figure is not None:
            figures[name] = figure
    return {"trials": len(rows), "failed": len(rows) - len(ok), "metrics": figures}


def verification_threshold(embeddings: Mapping[str, Sequence[np.ndarray]], references: int = 2,
                           seed: int = 0, max_pairs: int = 5000) -> dict:
    """The equal-error-rate threshold of GE2E similarity on real clips, scored the way trials
    are: one clip against the renormalised mean of `references` other clips of a speaker
    (genuine: the same speaker; impostor: another speaker).

    embeddings: speaker -> unit embeddings of that speaker's clips.
    """
    rng = np.random.default_rng(seed)
    speakers = sorted(s for s, e in embeddings.items() if len(e) >= 2)
    if len(speakers) < 2:
        raise ValueError("the verification threshold needs at least two speakers with two clips each")

    def centroid(clips: Sequence[np.ndarray]) -> np.ndarray:
        mean = np.mean(clips, axis=0)
        return mean / np.linalg.norm(mean)

    genuine, impostor = [], []
    for speaker in speakers:
        clips = [np.asarray(e, float) for e in embeddings[speaker]]
        for i, probe in enumerate(clips):
            others = [c for j, c in enumerate(clips) if j != i]
            picked = rng.permutation(len(others))[:references]
            genuine.append(float(probe @ centroid([others[k] for k in picked])))
    for probe_speaker, target_speaker in itertools.permutations(speakers, 2):
        probe_clips, target_clips = embeddings[probe_speaker], embeddings[target_speaker]
        picked = rng.permutation(len(target_clips))[:references]
        target = centroid([np.asarray(target_clips[k], float) for k in picked])
        impostor.extend(float(np.asarray(p, float) @ target) for p in probe_clips)
    impostor = list(rng.permutation(impostor)[:max_pairs])
    eer, threshold = equal_error_rate(np.array(genuine), np.array(impostor))
    return {"threshold": threshold, "eer": eer, "genuine_pairs": len(genuine),
            "impostor_pairs": len(impostor), "speakers": len(speakers)}


def paired_comparison(first: Sequence[Mapping], other: Sequence[Mapping]) -> dict | None:
    """How `other` differs from `first` on the trials both scored (rows matched by trial_id):
    a system's mean over its own trials hides whether it won on most of them, and the trials'
    own spread (short clips, hard texts) cancels out of the differences.

    Returns {"n", "metrics"} or None where no trial has both: `secs` and `dnsmos_ovrl` as the
    mean difference (other - first) with its 95% bootstrap interval and the trials where it is
    higher and lower; `wer` as the difference in pooled word errors over the first system's
    reference words (a fraction: 0.02 is 2 points), with the trials that have more and fewer
    errors."""
    mine = {r["trial_id"]: r["metrics"] for r in first if r.get("status") == "ok"}
    pairs = [(mine[r["trial_id"]], r["metrics"]) for r in other
             if r.get("status") == "ok" and r["trial_id"] in mine]
    if not pairs:
        return None
    figures = {}
    for name in ("secs", "dnsmos_ovrl"):
        both = [(a[name], b[name]) for a, b in pairs if a.get(name) is not None and b.get(name) is not None]
        if both:
            delta = np.array([b - a for a, b in both], dtype=np.float64)
            figures[name] = {"value": float(delta.mean()), "ci95": bootstrap_ci([delta], lambda d: d.mean(axis=-1)),
                             "higher": int((delta > 0).sum()), "lower": int((delta < 0).sum()), "n": len(both)}
    both = [(a["word_errors"], b["word_errors"], a["words"]) for a, b in pairs
            if "word_errors" in a and "word_errors" in b and a.get("words")]
    if both:
        errors_a, errors_b, words = (np.array(c, dtype=np.float64) for c in zip(*both))
        change = lambda ea, eb, w: (eb.sum(axis=-1) - ea.sum(axis=-1)) / w.sum(axis=-1)  # noqa: E731
        figures["wer"] = {"value": float((errors_b.sum() - errors_a.sum()) / words.sum()),
                          "ci95": bootstrap_ci([errors_a, errors_b, words], change),
                          "higher": int((errors_b > errors_a).sum()), "lower": int((errors_b < errors_a).sum()),
                          "n": len(both)}
    return {"n": len(pairs), "metrics": figures}


def add_paired(entries: Sequence[dict], rows_by_system: dict[str, Sequence[dict]]) -> None:
    """Each model after the first gets `paired`: its trial-by-trial difference from the first
    model (`eval.summary.paired_comparison`), the comparison a choice between them needs."""
    models = [e for e in entries if e.get("kind", "model") == "model"]
    if len(models) < 2:
        return
    first = models[0]["name"]
    for entry in models[1:]:
        paired = paired_comparison(rows_by_system[first], rows_by_system[entry["name"]])
        if paired is not None:
            entry["paired"] = {"against": first, **paired}
