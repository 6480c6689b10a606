"""Report figures on known answers: intervals, pooled WER, accept rates, the EER threshold,
metric selection and transcripts scored against their references."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.render import render_html, render_markdown
from eval.scoring import METRICS, error_counts, expand_metrics
from eval.summary import (
    add_paired, bootstrap_ci, paired_comparison, summarise_metric, summarise_system, verification_threshold,
)


def rows(*metrics: dict, status: str = "ok") -> list[dict]:
    return [{"status": status, "metrics": m} for m in metrics]


def test_bootstrap_interval_of_constant_and_spread_values():
    assert bootstrap_ci([np.full(10, 0.7)], lambda v: v.mean(axis=-1)) == [pytest.approx(0.7)] * 2
    values = np.random.default_rng(0).normal(1.0, 1.0, size=400)
    low, high = bootstrap_ci([values], lambda v: v.mean(axis=-1))
    # the mean of 400 draws of N(1, 1) has a standard error of 0.05: the interval is about +-0.1
    assert low < values.mean() < high and 0.15 < high - low < 0.25
    assert bootstrap_ci([np.array([1.0])], lambda v: v.mean(axis=-1)) is None


def test_wer_pools_errors_over_trials():
    figure = summarise_metric("wer", rows({"word_errors": 1.0, "words": 2.0}, {"word_errors": 0.0, "words": 8.0}))
    assert figure["value"] == pytest.approx(0.1)  # 1 error in 10 words, not the mean rate 0.25
    assert figure["n"] == 2 and figure["ci95"][0] <= 0.1 <= figure["ci95"][1]


def test_accept_rate_peak_memory_and_missing_metrics():
    scored = rows({"secs": 0.9, "peak_mem_mb": 5.0}, {"secs": 0.5, "peak_mem_mb": 9.0}, {"secs": 0.8})
    assert summarise_metric("sv_accept", scored, threshold=0.75)["value"] == pytest.approx(2 / 3)
    assert summarise_metric("sv_accept", scored, threshold=None) is None
    memory = summarise_metric("peak_mem_mb", scored)
    assert memory == {"value": 9.0, "ci95": None, "n": 2}
    assert summarise_metric("mcd", scored) is None
    system = summarise_system(["secs", "mcd"], scored + rows({}, status="failed"), threshold=None)
    assert (system["trials"], system["failed"]) == (4, 1) and list(system["metrics"]) == ["secs"]


def test_perfect_and_empty_transcripts():
    perfect = error_counts("the cat sat", "the cat sat")
    assert (perfect["wer"], perfect["cer"], perfect["words"]) == (0.0, 0.0, 3.0)
    empty = error_counts("the cat sat", "")
    assert (empty["wer"], empty["word_errors"], empty["cer"]) == (1.0, 3.0, 1.0)
    extra = error_counts("the cat", "the cat sat down")
    assert extra["wer"] == 1.0  # two insertions against two words


def _speaker_clouds(seed: int, spread: float) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    clouds = {}
    for speaker in range(6):
        centre = rng.normal(size=32)
        clips = centre + spread * rng.normal(size=(5, 32))
        clouds[f"s{speaker}"] = list(clips / np.linalg.norm(clips, axis=1, keepdims=True))
    return clouds


def test_verification_threshold_separates_speakers_and_not_shuffled_labels():
    clouds = _speaker_clouds(0, spread=0.1)
    result = verification_threshold(clouds, references=2)
    assert result["eer"] == 0.0 and result["speakers"] == 6
    assert result["genuine_pairs"] == 30 and result["impostor_pairs"] == 6 * 5 * 5
    # with the speaker labels shuffled, genuine and impostor pairs look alike: EER near chance
    clips = [c for v in clouds.values() for c in v]
    order = np.random.default_rng(1).permutation(len(clips))
    shuffled = {f"x{k}": [clips[i] for i in order[k * 5:(k + 1) * 5]] for k in range(6)}
    assert verification_threshold(shuffled, references=2)["eer"] > 0.3
    with pytest.raises(ValueError, match="two speakers"):
        verification_threshold({"a": clouds["s0"]})


def test_metric_selection_by_name_and_group():
    assert expand_metrics(None) == list(METRICS)
    assert expand_metrics(["intelligibility", "mcd"]) == ["wer", "cer", "mcd"]
    assert expand_metrics(["sv_accept"]) == ["secs", "sv_accept"]  # read off the similarity
    with pytest.raises(ValueError, match="unknown metric"):
        expand_metrics(["pesq"])


def test_paired_comparison_matches_trials_and_counts_each_way():
    def row(trial, secs, errors, words=10, status="ok"):
        return {"trial_id": trial, "status": status,
                "metrics": {"secs": secs, "word_errors": errors, "words": words, "dnsmos_ovrl": 2.0}}
    first = [row("a", 0.70, 1), row("b", 0.60, 0), row("c", 0.80, 2), row("d", 0.50, 0)]
    other = [row("c", 0.85, 1), row("a", 0.75, 3), row("b", 0.55, 0), row("d", 0.9, 9, status="failed"),
             row("e", 0.99, 0)]  # d failed, e only here: neither counts
    paired = paired_comparison(first, other)
    assert paired["n"] == 3
    secs, wer, ovrl = (paired["metrics"][k] for k in ("secs", "wer", "dnsmos_ovrl"))
    assert secs["value"] == pytest.approx((0.05 - 0.05 + 0.05) / 3)
    assert (secs["higher"], secs["lower"]) == (2, 1)
    assert wer["value"] == pytest.approx((4 - 3) / 30)  # errors 1+0+2 -> 3+0+1 over 30 words
    assert (wer["higher"], wer["lower"]) == (1, 1)
    assert ovrl["value"] == 0 and (ovrl["higher"], ovrl["lower"]) == (0, 0)
    assert wer["ci95"][0] <= wer["value"] <= wer["ci95"][1]
    assert paired_comparison(first, [row("z", 0.5, 0)]) is None

    # in a report: every model after the first is paired with it, baselines are not
    entries = [{"name": "default", "kind": "model", "metrics": {}}, {"name": "source", "kind": "baseline"},
               {"name": "other", "kind": "model", "metrics": {}}]
    add_paired(entries, {"default": first, "source": other, "other": other})
    assert "paired" not in entries[0] and "paired" not in entries[1]
    assert entries[2]["paired"]["against"] == "default" and entries[2]["paired"]["n"] == 3
    markdown = render_markdown({"systems": entries, "metric_info": {}})
    assert "Trial by trial against default" in markdown
    assert "| other | 3 | +0.017 [" in markdown and "higher on 2, lower on 1" in markdown
    assert "+3.3 pts [" in markdown and "more errors on 1, fewer on 1" in markdown
    assert "<h3>Trial by trial against default</h3>" in render_html({"systems": entries, "metric_info": {}}, Path("."))
