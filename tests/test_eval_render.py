"""Rendering an evaluation report to report.md and a self-contained report.html."""
from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import soundfile as sf
from matplotlib.container import ErrorbarContainer

from eval.render import (metric_figure, render_html, render_markdown, similarity_intelligibility_figure,
                         write_report_files)

METRIC_INFO = {
    "secs": {"label": "Similarity to target", "better": "higher", "unit": "cosine"},
    "wer": {"label": "Word error rate", "better": "lower", "unit": "fraction"},
    "abx_within": {"label": "ABX error within speaker", "better": "lower", "unit": "fraction"},
    "rtf": {"label": "Real-time factor", "better": "lower", "unit": "x"},
}


def _metric(value, lo=None, hi=None, n=50):
    return {"value": value, "ci95": None if lo is None else [lo, hi], "n": n}


def _report() -> dict:
    systems = [
        {"name": "source", "kind": "baseline", "description": "the source utterance, unconverted",
         "trials": 4, "failed": 0,
         "metrics": {"secs": _metric(0.30, 0.25, 0.35), "wer": _metric(0.01, 0.0, 0.02),
                     "abx_within": _metric(0.05, n=800)}},
        {"name": "target ceiling", "kind": "baseline", "trials": 4, "failed": 0,
         "metrics": {"secs": _metric(0.95, 0.93, 0.97), "wer": _metric(0.02, 0.01, 0.03)}},
        {"name": "vqvc-small", "kind": "model", "model": "vqvc-small", "vocoder": "griffinlim",
         "trials": 4, "failed": 1,
         "metrics": {"secs": _metric(0.70, 0.65, 0.75), "wer": _metric(0.40, 0.30, 0.50),
                     "abx_within": _metric(0.20, n=800), "rtf": _metric(0.13, 0.12, 0.14)}},
        {"name": "autovc <big> & co", "kind": "model", "trials": 4, "failed": 0,
         # no ABX for this one, and an rtf whose value is null: both missing
         "metrics": {"secs": _metric(0.60, 0.50, 0.70), "wer": _metric(0.25, 0.20, 0.30),
                     "rtf": {"value": None, "ci95": None, "n": 0}}},
    ]
    return {
        "format": "voicelab-eval-report", "version": 1, "created": "2026-11-21T06:00:00Z",
        "voicelab_version": "0.1.0",
        "protocol": {"path": "runs/protocol.json", "trials": 4, "metadata": {"seed": 0}},
        "machine": {"platform": "Linux", "cpu_count": 2, "torch_threads": 1, "device": "cpu"},
        "asr": "pocketsphinx",
        "sv_threshold": {"threshold": 0.74, "eer": 0.05, "genuine_pairs": 120, "impostor_pairs": 600},
        "metric_info": METRIC_INFO,
        "systems": systems,
        "failures": [{"system": "vqvc-small", "trial_id": "t07", "error": "AudioError: <script>alert(1)</script>"}],
        "trials": [],
        "examples": [{"trial_id": "t01", "text": "Did Zoe polish the yellow pillow?", "source_speaker": "a",
                      "target_speaker": "b", "source": "audio/inputs/src.wav", "reference": "audio/inputs/ref.wav",
                      "outputs": {"vqvc-small": "audio/vqvc-small/gone.wav",
                                  "autovc <big> & co": "audio/autovc/t01.wav"}}],
    }


def _tone(path, seconds=0.3, sample_rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sample_rate)


@pytest.fixture
def report_dir(tmp_path):
    _tone(tmp_path / "audio/inputs/src.wav")
    _tone(tmp_path / "audio/inputs/ref.wav")
    _tone(tmp_path / "audio/autovc/t01.wav", seconds=0.2)
    return tmp_path


def _table_rows(markdown: str) -> dict[str, list[str]]:
    """Results-table rows of report.md: system cell -> the other cells."""
    section = markdown.split("## Results")[1].split("\n\n")[1]
    rows = [line.strip("|").split(" | ") for line in section.splitlines()[2:]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_write_report_files_makes_self_contained_html_and_markdown(report_dir):
    paths = write_report_files(_report(), report_dir)
    assert set(paths) == {"md", "html"} and all(p.is_file() for p in paths.values())
    assert not list(report_dir.glob(".*.tmp"))  # temp files were renamed, not left behind
    page = paths["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == 2
    players = re.findall(r'<audio controls[^>]* src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(players) == 3  # source, reference, and the one system output that exists
    assert base64.b64decode(players[0]) == (report_dir / "audio/inputs/src.wav").read_bytes()
    assert page.count("(audio missing)") == 1  # vqvc-small's output file does not exist
    assert "Did Zoe polish the yellow pillow?" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "autovc &lt;big&gt; &amp; co" in page
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))  # nothing external


def test_markdown_table_rows_missing_metrics_and_failures():
    markdown = render_markdown(_report())
    rows = _table_rows(markdown)
    assert len(rows) == 4
    header = markdown.split("## Results")[1].split("\n\n")[1].splitlines()[0]
    assert "`secs` ↑" in header and "`wer` ↓" in header and "`abx_within` ↓" in header
    autovc = rows["autovc \\<big\\> & co"]
    assert autovc[2] == "—" and autovc[3] == "—"  # no ABX, null rtf
    assert rows["vqvc-small"][2] == "**0.200**"  # null ci95: the value alone (the only model with ABX)
    assert rows["source *(baseline)*"][0] == "0.300 ± 0.050"
    assert rows["vqvc-small"][-1] == "1/4"
    assert "vqvc-small, trial t07: AudioError: \\<script\\>" in markdown
    assert "- `secs`: Similarity to target; unit cosine; higher is better." in markdown


def test_best_value_is_bold_among_models_only():
    rows = _table_rows(render_markdown(_report()))
    # secs (higher is better): vqvc-small beats autovc; the target ceiling baseline is not a candidate.
    assert rows["vqvc-small"][0].startswith("**") and not rows["autovc \\<big\\> & co"][0].startswith("**")
    assert not rows["target ceiling *(baseline)*"][0].startswith("**")
    # wer (lower is better): autovc wins; the source baseline's lower wer does not count.
    assert rows["autovc \\<big\\> & co"][1] == "**0.250 ± 0.050**"
    assert not rows["vqvc-small"][1].startswith("**") and not rows["source *(baseline)*"][1].startswith("**")


def test_many_failures_are_cut_short():
    report = _report()
    report["failures"] = [{"system": "vqvc-small", "trial_id": f"t{i}", "error": "boom"} for i in range(25)]
    markdown = render_markdown(report)
    assert markdown.count("boom") == 20 and "and 5 more" in markdown


def test_fragment_and_sparse_report(report_dir):
    fragment = render_html(_report(), report_dir, standalone=False, max_examples=0)
    assert fragment.startswith('<div class="voicelab-report">') and "<style>" in fragment
    assert "<html" not in fragment and "<body" not in fragment and "<audio" not in fragment
    sparse = {"systems": [{"name": "x", "metrics": {}}]}  # no optional key at all
    assert "x" in render_markdown(sparse)
    assert "<html" in render_html(sparse, report_dir)


def test_metric_figure_has_one_axes_per_metric_and_error_bars_where_ci_exists():
    fig = metric_figure(_report())
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert len(fig.axes) == 4
    errorbars = {title: [c for c in ax.containers if isinstance(c, ErrorbarContainer)] for title, ax in axes.items()}
    assert len(errorbars["Similarity to target ↑"]) == 1
    assert errorbars["ABX error within speaker ↓"] == []  # set-level figures have no CI
    # rtf: only vqvc-small has a value, so a single bar.
    assert len(axes["Real-time factor ↓"].patches) == 1


def test_scatter_needs_a_system_with_both_similarity_and_wer():
    fig = similarity_intelligibility_figure(_report())
    assert fig is not None
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"source", "target ceiling", "vqvc-small", "autovc <big> & co"} <= labels
    report = _report()
    for system in report["systems"]:
        system["metrics"].pop("wer")
    assert similarity_intelligibility_figure(report) is None
