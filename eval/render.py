"""Render an evaluation report (the dict in report.json) as Markdown and self-contained HTML.

`python -m eval run` writes DIR/report.json; `write_report_files` turns it into DIR/report.md
(text tables for a terminal or GitHub) and DIR/report.html (the tables, charts as embedded PNGs
and audio players as embedded WAVs, so the one file can be archived or mailed alone).
`render_html(..., standalone=False)` gives the same body as a <div> fragment for Gradio's gr.HTML.

Conventions both renderers share:
- a metric is missing when absent, null or not finite: tables show "—" and charts leave it out;
- "± h" is half the width of the 95% confidence interval (the HTML tooltip gives its bounds);
- the bold value of a column is the best among systems of kind "model" (all systems when there
  is none), compared as displayed, so ties are all bold. Baselines such as a target-speaker
  ceiling are left out because they would otherwise always win.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from vc.hub import write_files_atomically


if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, so Markdown needs none
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MISSING = "—"
_DECIMALS = {"bitrate": 1, "peak_mem_mb": 0}
_DEFAULT_DECIMALS = 3
_ARROWS = {"higher": "↑", "lower": "↓"}
_MAX_FAILURES_LISTED = 20
_MAX_EMBEDDED_AUDIO_BYTES = 16 * 2**20  # keeps a stray long file from bloating the page
_AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
_MACHINE_FIELDS = {"platform": "{}", "processor": "{}", "cpu_count": "{} CPUs", "torch_threads": "torch threads {}",
                   "device": "device {}", "processes": "processes {}"}
_DIAGONALS = {("higher", "lower"): "↘", ("higher", "higher"): "↗",  # (secs, wer) better -> where on the scatter
              ("lower", "lower"): "↙", ("lower", "higher"): "↖"}
_BEST_NOTE = ("Bold: the best value among systems of kind \"model\" (baselines are excluded "
              "because a ceiling such as the target speaker would always win; all systems "
              "compete when none is a model). "
              "± is half the width of the 95% confidence interval.")


# ----- reading the report ---------------------------------------------------------------------
def _finite(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _metric(system: dict, name: str) -> tuple[float | None, tuple[float, float] | None, object]:
    """(value, 95% CI or None, n) of one system's metric; value None when it is missing."""
    entry = (system.get("metrics") or {}).get(name)
    if not isinstance(entry, dict):  # tolerate a bare number
        return _finite(entry), None, None
    ci = entry.get("ci95")
    bounds = [_finite(b) for b in ci] if isinstance(ci, (list, tuple)) and len(ci) == 2 else [None]
    return _finite(entry.get("value")), None if None in bounds else (min(bounds), max(bounds)), entry.get("n")


def _metric_value(system: dict, name: str) -> float | None:
    return _metric(system, name)[0]


def _systems(report: dict) -> list[dict]:
    return [s for s in report.get("systems") or [] if isinstance(s, dict)]


def _info(report: dict, name: str) -> dict:
    return (report.get("metric_info") or {}).get(name) or {}


def _metric_names(report: dict) -> list[str]:
    """Metrics some system has a value for: metric_info's order first, then the rest sorted."""
    present = {n for s in _systems(report) for n in (s.get("metrics") or {}) if _metric_value(s, n) is not None}
    ordered = [n for n in report.get("metric_info") or {} if n in present]
    return ordered + sorted(present - set(ordered))


def _label(report: dict, name: str) -> str:
    return str(_info(report, name).get("label") or name)


def _arrow(report: dict, name: str) -> str:
    """The ↑ or ↓ (with its leading space) to put after a metric's key or label."""
    arrow = _ARROWS.get(_info(report, name).get("better"))
    return f" {arrow}" if arrow else ""


def _header(report: dict, name: str) -> str:
    return _label(report, name) + _arrow(report, name)


def _is_baseline(system: dict) -> bool:
    return system.get("kind", "model") != "model"


# ----- formatting -----------------------------------------------------------------------------
def _format_number(name: str, x: float) -> str:
    return f"{x:.{_DECIMALS.get(name, _DEFAULT_DECIMALS)}f}"


def _format_cell(system: dict, name: str) -> str:
    value, ci, _ = _metric(system, name)
    if value is None:
        return MISSING
    return _format_number(name, value) + (f" ± {_format_number(name, (ci[1] - ci[0]) / 2)}" if ci else "")


def _bold_cells(report: dict, metrics: list[str]) -> set[tuple[int, str]]:
    """(system index, metric) of each value to show in bold: see the module docstring."""
    systems = _systems(report)
    candidates = [i for i, s in enumerate(systems) if not _is_baseline(s)] or list(range(len(systems)))
    bold = set()
    for name in metrics:
        better = _info(report, name).get("better")
        shown = {i: _format_number(name, v) for i in candidates
                 if (v := _metric_value(systems[i], name)) is not None}
        if shown and better in _ARROWS:
            best = (max if better == "higher" else min)(shown.values(), key=float)
            bold |= {(i, name) for i, text in shown.items() if text == best}
    return bold


def _failed(report: dict, system: dict) -> tuple[int, str]:
    """How many trials of the system failed, and that as "failed/trials" for display."""
    failed = system.get("failed")
    if not isinstance(failed, int):  # not summarised: count the listed failures
        listed = [f for f in report.get("failures") or [] if isinstance(f, dict)]
        failed = sum(1 for f in listed if f.get("system") == system.get("name"))
    trials, not_run = system.get("trials"), system.get("not_run")
    text = f"{failed}/{trials}" if isinstance(trials, int) else str(failed)
    return failed, text + (f" ({not_run} not run)" if isinstance(not_run, int) and not_run > 0 else "")


def _failure_summary(report: dict) -> tuple[str, list[dict], int]:
    """A one-line count, the failures to list, and how many more were left off the list."""
    failures = [f for f in report.get("failures") or [] if isinstance(f, dict)]
    if not failures:
        return "No trial failed.", [], 0
    per_system = [(s.get("name", "?"), *_failed(report, s)) for s in _systems(report)]
    counts = ", ".join(f"{name} {text}" for name, count, text in per_system if count)
    summary = f"{len(failures)} trial{'' if len(failures) == 1 else 's'} failed" + (f" ({counts})." if counts else ".")
    return summary, failures[:_MAX_FAILURES_LISTED], max(0, len(failures) - _MAX_FAILURES_LISTED)


def _summary_lines(report: dict) -> list[tuple[str, str]]:
    """(label, text) pairs saying when, what and where the evaluation ran."""
    version = f" (voicelab {report['voicelab_version']})" if report.get("voicelab_version") else ""
    lines = [("Created", f"{report['created']}{version}")] if report.get("created") else []
    protocol = report.get("protocol") or {}
    if protocol:
        lines.append(("Protocol", f"{protocol.get('path', '?')}, {protocol.get('trials', '?')} trials"))
        metadata = protocol.get("metadata") or {}
        if metadata:
            text = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in metadata.items())
            lines.append(("Protocol metadata", text if len(text) <= 300 else text[:299] + "…"))  # free-form
    if "asr" in report:
        lines.append(("ASR", report["asr"] or "none (WER/CER not measured)"))
    machine = {**(report.get("machine") or {}), **(report.get("run") or {})}  # the run says the device
    shown = [pattern.format(machine[key]) for key, pattern in _MACHINE_FIELDS.items() if machine.get(key) is not None]
    if shown:
        lines.append(("Machine", "; ".join(shown)))
    sv = report.get("sv_threshold")
    if isinstance(sv, dict) and _finite(sv.get("threshold")) is not None:
        eer = f" at EER {sv['eer']:.1%}" if _finite(sv.get("eer")) is not None else ""
        lines.append(("Speaker verification", f"threshold {sv['threshold']:.3f}{eer} ({sv.get('genuine_pairs', '?')} "
                      f"genuine / {sv.get('impostor_pairs', '?')} impostor pairs)"))
    elif isinstance(sv, dict):
        lines.append(("Speaker verification", f"no threshold: {sv.get('error', 'unknown error')}"))
    lines += [("Goal", str(goal)) for goal in report.get("goal_lines") or []]
    lines += [("Note", str(note)) for note in report.get("notes") or []]
    return lines


def _reading_guide(report: dict, metrics: list[str]) -> list[str]:
    """(key, "label; unit U; higher/lower is better.") per metric."""
    return [(name, _label(report, name) + (f"; unit {info['unit']}" if info.get("unit") else "")
             + (f"; {info['better']} is better." if info.get("better") in _ARROWS else "."))
            for name, info in ((n, _info(report, n)) for n in metrics)]


# ----- Markdown -------------------------------------------------------------------------------
def _md(text) -> str:
    """Text safe inside a GitHub Markdown table cell or list item."""
    text = " ".join(str(text).split())
    for ch in "\\|<>*_`[]":
        text = text.replace(ch, "\\" + ch)
    return text


def _md_code(name: str) -> str:
    """A metric key as inline code, which needs no escaping unless it holds a backtick or pipe."""
    return _md(name) if "`" in name or "|" in name else f"`{name}`"


def render_markdown(report: dict) -> str:
    """report.md: summary, results table, how to read it, systems and failures."""
    metrics = _metric_names(report)
    bold = _bold_cells(report, metrics)
    out = ["# Voice conversion evaluation", ""]
    out += [f"- **{label}:** {_md(text)}" for label, text in _summary_lines(report)] + [""]
    out += ["## Results", ""]
    if _systems(report):
        out.append("| System | " + " | ".join(_md_code(n) + _arrow(report, n) for n in metrics) + " | Failed |")
        out.append("|---|" + "---:|" * (len(metrics) + 1))
        for index, system in enumerate(_systems(report)):
            name = _md(system.get("name", "?")) + (f" *({_md(system.get('kind'))})*" if _is_baseline(system) else "")
            cells = [_format_cell(system, n) for n in metrics]
            cells = [f"**{c}**" if (index, n) in bold else c for c, n in zip(cells, metrics)]
            out.append(f"| {name} | " + " | ".join(cells) + f" | {_failed(report, system)[1]} |")
        out += ["", _md(_BEST_NOTE)] + _md_paired(_systems(report))
        out += ["", "### How to read this", ""]
        out += [f"- {_md_code(name)}: {_md(line)}" for name, line in _reading_guide(report, metrics)]
        out += ["", "## Systems", ""]
        for system in _systems(report):
            parts = [system.get("kind", "model")] + [f"{k} {system[k]}" for k in ("model", "vocoder") if system.get(k)]
            description = f": {_md(system['description'])}" if system.get("description") else ""
            out.append(f"- **{_md(system.get('name', '?'))}** ({_md(', '.join(map(str, parts)))}){description}")
    else:
        out.append("No systems were evaluated.")
    out += ["", "## Failures", ""] + _md_failures(report)
    return "\n".join(out) + "\n"


def paired_cells(paired: Mapping) -> list[str]:
    """Markdown cells of one `paired_comparison`: similarity, WER and DNSMOS OVRL changes."""
    figures = paired.get("metrics") or {}

    def cell(name: str, scale: float, unit: str, digits: int, more: str, fewer: str) -> str:
        figure = figures.get(name)
        if not figure:
            return "—"
        ci = figure.get("ci95")
        spread = f" [{ci[0] * scale:+.{digits}f}, {ci[1] * scale:+.{digits}f}]" if ci else ""
        return (f"{figure['value'] * scale:+.{digits}f}{unit}{spread}; {more} on {figure['higher']}, "
                f"{fewer} on {figure['lower']}")
    return [cell("secs", 1, "", 3, "higher", "lower"), cell("wer", 100, " pts", 1, "more errors", "fewer"),
            cell("dnsmos_ovrl", 1, "", 2, "higher", "lower")]


PAIRED_HEADER = ["| system | trials | similarity change (95 % CI) | WER change (95 % CI) | "
                 "DNSMOS OVRL change (95 % CI) |",
                 "|---|---:|---|---|---|"]


def md_paired_table(systems: list[dict]) -> list[str]:
    """The `paired` comparisons of `systems` as a Markdown table (no lines when there are none)."""
    paired = [s for s in systems if s.get("paired")]
    if not paired:
        return []
    return PAIRED_HEADER + [f"| {_md(s.get('name', '?'))} | {s['paired'].get('n', '?')} | "
                            + " | ".join(paired_cells(s["paired"])) + " |" for s in paired]


def _md_paired(systems: list[dict]) -> list[str]:
    """A conversion report's paired section: heading, how to read it, table."""
    table = md_paired_table(systems)
    if not table:
        return []
    against = next(s for s in systems if s.get("paired"))["paired"].get("against", "the first system")
    return ["", f"### Trial by trial against {_md(against)}", "",
            _md(f"Each system minus {against} on the trials both scored, with the 95% bootstrap "
                "interval over those trials and the number of trials that went each way: the trials' own "
                "spread (short clips, hard texts) cancels out of a paired difference, so a gap the table "
                "above cannot resolve may show here."), ""] + table


def _md_failures(report: dict) -> list[str]:
    summary, listed, more = _failure_summary(report)
    lines = [_md(summary), ""] if listed else [_md(summary)]
    lines += [f"- {_md(f.get('system', '?'))}, trial {_md(f.get('trial_id', '?'))}: {_md(f.get('error', ''))}"
              for f in listed]
    return lines + ([f"- … and {more} more"] if more else [])


# ----- figures --------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Figure:
    """A figure drawn by Agg without pyplot, so no global figure state is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _system_color(index: int):
    from matplotlib import colormaps

    return colormaps["tab10"](index % 10)  # by position in the report, the same in every chart


def _error_extent(value: float, ci: tuple[float, float] | None) -> tuple[float, float]:
    """Distances below and above value to the CI bounds (0 without a CI, never negative)."""
    return (0.0, 0.0) if ci is None else (max(0.0, value - ci[0]), max(0.0, ci[1] - value))


def metric_figure(report: dict) -> Figure:
    """Bar charts, one subplot per metric present, with 95% CI error bars where known."""
    metrics = _metric_names(report)
    ncols = max(1, min(3, len(metrics)))
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig = _new_figure(4.2 * ncols, 3.2 * nrows)
    if not metrics:
        fig.text(0.5, 0.5, "No metrics to plot", ha="center", va="center")
        return fig
    for position, name in enumerate(metrics, start=1):
        _plot_metric_bars(fig.add_subplot(nrows, ncols, position), report, name)
    return fig


def _plot_metric_bars(ax: Axes, report: dict, name: str) -> None:
    rows = [(i, s) for i, s in enumerate(_systems(report)) if _metric_value(s, name) is not None]
    values = [_metric_value(s, name) for _, s in rows]
    bars = ax.bar(range(len(rows)), values, color=[_system_color(i) for i, _ in rows])
    for bar, (_, system) in zip(bars, rows):
        if _is_baseline(system):
            bar.set_hatch("//")
            bar.set_alpha(0.6)
    with_ci = [(x, v, ci) for x, ((_, s), v) in enumerate(zip(rows, values)) if (ci := _metric(s, name)[1])]
    if with_ci:
        extents = [_error_extent(v, ci) for _, v, ci in with_ci]
        ax.errorbar([x for x, _, _ in with_ci], [v for _, v, _ in with_ci], fmt="none", ecolor="black",
                    capsize=3, yerr=[[lo for lo, _ in extents], [hi for _, hi in extents]])
    ax.set_xticks(range(len(rows)), [str(s.get("name", "?")) for _, s in rows], rotation=30, ha="right", fontsize=8)
    ax.set_title(textwrap.fill(_header(report, name), 40), fontsize=9)
    if _info(report, name).get("unit"):
        ax.set_ylabel(str(_info(report, name)["unit"]))


def similarity_intelligibility_figure(report: dict) -> Figure | None:
    """Similarity to target (x) against WER (y), one labelled point per system with CI bars."""
    points = [(i, s) for i, s in enumerate(_systems(report))
              if _metric_value(s, "secs") is not None and _metric_value(s, "wer") is not None]
    if not points:
        return None
    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    for index, system in points:
        x, y = _metric_value(system, "secs"), _metric_value(system, "wer")
        xerr, yerr = _error_extent(x, _metric(system, "secs")[1]), _error_extent(y, _metric(system, "wer")[1])
        ax.errorbar([x], [y], xerr=[[xerr[0]], [xerr[1]]], yerr=[[yerr[0]], [yerr[1]]], capsize=3,
                    fmt="s" if _is_baseline(system) else "o", color=_system_color(index))
        ax.annotate(str(system.get("name", "?")), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel(_header(report, "secs"))
    ax.set_ylabel(_header(report, "wer"))
    directions = (_info(report, "secs").get("better"), _info(report, "wer").get("better"))
    if directions in _DIAGONALS:
        ax.set_title(f"better {_DIAGONALS[directions]}", loc="right", fontsize=9, color="gray")
    ax.grid(alpha=0.3)
    return fig


def _figure_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    fig.clear()  # the figure is discarded once encoded; free its artists now
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ----- HTML -----------------------------------------------------------------------------------
# Every rule is scoped to .voicelab-report so the fragment leaves a host page (Gradio) alone.
_CSS = """
.voicelab-report { font-family: system-ui, sans-serif; line-height: 1.4; max-width: 1200px; }
.voicelab-report table { border-collapse: collapse; margin: 0.5em 0; }
.voicelab-report th, .voicelab-report td { border: 1px solid rgba(128,128,128,0.4); padding: 0.25em 0.6em; }
.voicelab-report td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.voicelab-report .kind, .voicelab-report .missing { font-size: 0.85em; opacity: 0.7; font-style: italic; }
.voicelab-report .note { font-size: 0.85em; opacity: 0.8; }
.voicelab-report img { max-width: 100%; background: white; }
"""


def _e(text) -> str:
    return html.escape(str(text))


def render_html(report: dict, report_dir: Path, standalone: bool = True, max_examples: int = 4) -> str:
    """report.html (standalone) or a <div class="voicelab-report"> fragment with its own <style>."""
    summary = "".join(f"<li><b>{_e(label)}:</b> {_e(text)}</li>" for label, text in _summary_lines(report))
    title = _e(report.get("title") or "Voice conversion evaluation")
    sections = [f"<h1>{title}</h1>\n<ul>{summary}</ul>", _html_results(report),
                _html_figures(report), _html_failures(report), _html_examples(report, Path(report_dir), max_examples)]
    fragment = (f'<div class="voicelab-report">\n<style>{_CSS}</style>\n'
                + "\n".join(s for s in sections if s) + "\n</div>")
    if not standalone:
        return fragment
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<title>{title}</title>\n</head>\n<body>\n' + fragment + "\n</body>\n</html>\n")


def _html_results(report: dict) -> str:
    systems = _systems(report)
    if not systems:
        return "<h2>Results</h2>\n<p>No systems were evaluated.</p>"
    metrics = _metric_names(report)
    bold = _bold_cells(report, metrics)
    head = "".join(f'<th title="{_e(_label(report, name))}">{_e(name + _arrow(report, name))}</th>'
                   for name in metrics)
    rows = []
    for index, system in enumerate(systems):
        kind = f' <span class="kind">{_e(system.get("kind"))}</span>' if _is_baseline(system) else ""
        title = f' title="{_e(system["description"])}"' if system.get("description") else ""
        cells = "".join(_html_metric_cell(system, name, (index, name) in bold) for name in metrics)
        rows.append(f'<tr><td{title}>{_e(system.get("name", "?"))}{kind}</td>{cells}'
                    f'<td class="num">{_e(_failed(report, system)[1])}</td></tr>')
    guide = "".join(f"<li><code>{_e(name)}</code>: {_e(line)}</li>" for name, line in _reading_guide(report, metrics))
    return (f"<h2>Results</h2>\n<table><thead><tr><th>System</th>{head}<th>Failed</th></tr></thead>\n"
            f"<tbody>{''.join(rows)}</tbody></table>\n<p class=\"note\">{_e(_BEST_NOTE)}</p>\n"
            + _html_paired(systems)
            + f"<details><summary>How to read this</summary><ul>{guide}</ul></details>")


def _html_paired(systems: list[dict]) -> str:
    """The `paired` comparisons as a table ('' when there are none)."""
    paired = [s for s in systems if s.get("paired")]
    if not paired:
        return ""
    heads = "".join(f"<th>{_e(h.strip())}</th>" for h in PAIRED_HEADER[0].strip("|").split("|"))
    rows = "".join(f"<tr><td>{_e(s.get('name', '?'))}</td><td class=\"num\">{_e(s['paired'].get('n', '?'))}</td>"
                   + "".join(f"<td>{_e(c)}</td>" for c in paired_cells(s["paired"])) + "</tr>" for s in paired)
    against = paired[0]["paired"].get("against", "the first system")
    return (f"<h3>Trial by trial against {_e(against)}</h3>\n<p class=\"note\">Each system minus it on the "
            "trials both scored: the change, its 95% bootstrap interval, and the trials that went each way.</p>\n"
            f"<table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>\n")


def _html_metric_cell(system: dict, name: str, bold: bool) -> str:
    text = _e(_format_cell(system, name))
    _, ci, n = _metric(system, name)
    tip = [f"95% CI [{_format_number(name, ci[0])}, {_format_number(name, ci[1])}]"] if ci else []
    tip += [f"n={n}"] if n is not None else []
    title = f' title="{_e("; ".join(tip))}"' if tip else ""
    return f'<td class="num"{title}>{f"<b>{text}</b>" if bold else text}</td>'


def _html_figures(report: dict) -> str:
    if not _metric_names(report):
        return ""
    parts = ["<h2>Charts</h2>", f'<img alt="metrics per system" src="{_figure_data_uri(metric_figure(report))}">']
    scatter = similarity_intelligibility_figure(report)
    if scatter is not None:
        parts.append(f'<img alt="similarity against word error rate" src="{_figure_data_uri(scatter)}">')
    return "\n".join(parts)


def _html_failures(report: dict) -> str:
    summary, listed, more = _failure_summary(report)
    items = "".join(f"<li><b>{_e(f.get('system', '?'))}</b>, trial {_e(f.get('trial_id', '?'))}: "
                    f"<code>{_e(f.get('error', ''))}</code></li>" for f in listed)
    items += f"<li>… and {more} more</li>" if more else ""
    return f"<h2>Failures</h2>\n<p>{_e(summary)}</p>" + (f"\n<ul>{items}</ul>" if items else "")


def _html_examples(report: dict, report_dir: Path, max_examples: int) -> str:
    examples = [x for x in report.get("examples") or [] if isinstance(x, dict)]
    if not examples:
        return ""
    shown = examples[:max(0, max_examples)]
    parts = ["<h2>Listen</h2>"]
    if len(shown) < len(examples):
        parts.append(f"<p class=\"note\">Showing {len(shown)} of {len(examples)} examples.</p>")
    for example in shown:
        speakers = f"{example.get('source_speaker', '?')} → {example.get('target_speaker', '?')}"
        rows = [("Source", example.get("source")), ("Reference (target)", example.get("reference"))]
        rows += list((example.get("outputs") or {}).items())
        table = "".join(f"<tr><td>{_e(label)}</td><td>{_audio_player(report_dir, path)}</td></tr>"
                        for label, path in rows)
        text = f"<p>“{_e(example['text'])}”</p>" if example.get("text") else ""
        parts.append(f'<div><h3>Trial {_e(example.get("trial_id", "?"))}: '
                     f"speaker {_e(speakers)}</h3>{text}<table>{table}</table></div>")
    return "\n".join(parts)


def _audio_player(report_dir: Path, relative_path) -> str:
    """An <audio> element with the file embedded, or a note when it cannot be read."""
    if not relative_path:
        return '<span class="missing">(audio missing)</span>'
    path = report_dir / str(relative_path)
    try:
        if path.stat().st_size > _MAX_EMBEDDED_AUDIO_BYTES:
            return f'<span class="missing">(audio too large to embed: {_e(relative_path)})</span>'
        data = path.read_bytes()
    except OSError:
        return f'<span class="missing" title="{_e(relative_path)}">(audio missing)</span>'
    uri = f"data:{_AUDIO_TYPES.get(path.suffix.lower(), 'audio/wav')};base64,{base64.b64encode(data).decode('ascii')}"
    return f'<audio controls preload="none" src="{uri}"></audio>'


# ----- files ----------------------------------------------------------------------------------
def write_report_files(report: dict, report_dir: str | Path) -> dict[str, Path]:
    """Write report.md and report.html into report_dir, each replaced atomically."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    # Render both before writing either, so a rendering error leaves the old pair intact.
    texts = {"md": render_markdown(report), "html": render_html(report, report_dir)}
    write_files_atomically(report_dir, {f"report.{kind}": _bytes_writer(text) for kind, text in texts.items()})
    return {kind: report_dir / f"report.{kind}" for kind in texts}


def _bytes_writer(text: str):
    return lambda temp: temp.write_bytes(text.encode("utf-8"))
