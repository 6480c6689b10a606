"""The cloning report's files: report.md (the goals, then one table per voice set),
similarity-wer.png (similarity and WER per system and set), report.json and, in a run folder,
report.html (eval.render's page of the same figures, as the web demo's Results tab shows it).

    python -m eval clone-report --results runs/eval-clone --out reports/clone-50

`publish_clone_report` rebuilds the report from a results folder's rows (so it works while a
run is still going) and writes it without the per-trial rows, as `eval publish` does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from vc.hub import write_text_atomically

from .clone_protocol import map_metadata_paths
from .render import _md, _new_figure, _system_color, md_paired_table, render_html

PLOT = "similarity-wer.png"
MISSING = "—"
_SET_TITLES = {"real": "Real unseen voices (LibriSpeech test-other, VCTK)",
               "synthetic": "Synthetic unseen voices (the synthetic corpus's test split)"}
_COLUMNS = [("secs", "similarity to reference ↑"), ("secs_other", "similarity to other speakers"),
            ("sv_accept", "accepted as the voice ↑"), ("wer", "WER ↓"), ("cer", "CER ↓"),
            ("dnsmos_ovrl", "DNSMOS OVRL ↑"), ("rtf", "seconds per second of speech ↓")]
_PERCENT = {"sv_accept", "wer", "cer"}


def _figure(entry: dict, name: str):
    return (entry.get("metrics") or {}).get(name)


def format_figure(name: str, figure: dict | None) -> str:
    """"0.712 ± 0.021", "12.3 % ± 2.1", "44 %" or "—"."""
    if not figure or figure.get("value") is None:
        return MISSING
    value, ci = figure["value"], figure.get("ci95")
    half = (ci[1] - ci[0]) / 2 if ci else None
    if name == "sv_accept":
        return f"{value:.0%}"
    if name in _PERCENT:
        return f"{100 * value:.1f} %" + (f" ± {100 * half:.1f}" if half is not None else "")
    decimals = 2 if name.startswith("dnsmos") else 3
    return f"{value:.{decimals}f}" + (f" ± {half:.{decimals}f}" if half is not None else "")


def _trials_cell(entry: dict) -> str:
    text = str(entry.get("trials", 0))
    extra = [f"{entry['failed']} failed"] if entry.get("failed") else []
    extra += [f"{entry['not_run']} not run"] if entry.get("not_run") else []
    extra += [f"{entry['not_applicable']} n/a"] if entry.get("not_applicable") else []
    return text + (f" ({', '.join(extra)})" if extra else "")


def _goals_cell(entry: dict) -> str:
    names = {"similarity": "similarity", "wer": "WER", "other_speakers": "others"}
    goals = entry.get("goals") or {}
    return " · ".join(f"{names[k]} {'✓' if ok else '✗'}" for k, ok in goals.items()) or MISSING


def render_clone_markdown(report: dict) -> str:
    out = [f"# {report.get('title', 'Text cloning evaluation')}", ""]
    meta = (report.get("protocol") or {}).get("metadata") or {}
    out += [f"- **Created:** {report.get('created', '?')} (voicelab {report.get('voicelab_version', '?')})",
            f"- **Protocol:** {_md((report.get('protocol') or {}).get('path', '?'))}, "
            f"{(report.get('protocol') or {}).get('trials', '?')} trials "
            f"({', '.join(f'{n} {s}' for s, n in (meta.get('sets') or {}).items())}), seed {meta.get('seed', '?')}",
            f"- **ASR:** {report.get('asr') or 'none (WER/CER not measured)'}"]
    excluded = meta.get("excluded_texts") or []
    out.append(f"- **Texts held out from:** {_md(', '.join(excluded))}" if excluded else
               "- **Texts held out from:** not checked against any training data")
    machine = {**(report.get("machine") or {}), **(report.get("run") or {})}
    if machine:
        out.append(f"- **Machine:** {_md(machine.get('platform', '?'))}; {machine.get('cpu_count', '?')} CPUs; "
                   f"torch threads {machine.get('torch_threads', '?')}; device {machine.get('device', 'cpu')}")
    out += ["", "## Goals", ""] + [f"- {_md(line)}" for line in report.get("goal_lines") or []] + [""]
    for voice_set, info in (report.get("sets") or {}).items():
        out += [f"## {_SET_TITLES.get(voice_set, voice_set)}", ""]
        sv = info.get("sv_threshold") or {}
        level, same = info.get("cross_speaker_level"), info.get("same_speaker_level")
        facts = [f"{info.get('voices', '?')} voices, {info.get('trials', '?')} trials"]
        if level is not None:
            facts.append(f"cross-speaker level {level:.3f}")
        if same is not None:
            facts.append(f"same-speaker level {same:.3f}")
        if sv.get("threshold") is not None:
            facts.append(f"EER threshold {sv['threshold']:.3f} (EER {sv['eer']:.1%}, {sv.get('genuine_pairs')} "
                         f"genuine / {sv.get('impostor_pairs')} impostor pairs)")
        texts = info.get("texts") or {}
        if texts:
            facts.append("texts: " + ", ".join(f"{n} {k}" for k, n in texts.items()))
        out += [_md("; ".join(facts)) + ".", ""]
        out.append("| system | " + " | ".join(label for _, label in _COLUMNS) + " | trials | goals |")
        out.append("|---|" + "---:|" * len(_COLUMNS) + "---|---|")
        for entry in info.get("systems") or []:
            kind = " *(baseline)*" if entry.get("kind") == "baseline" else ""
            cells = [format_figure(name, _figure(entry, name)) for name, _ in _COLUMNS]
            out.append(f"| {_md(entry.get('name', '?'))}{kind} | " + " | ".join(cells)
                       + f" | {_trials_cell(entry)} | {_goals_cell(entry)} |")
        out.append("")
        more = [(e.get("name", "?"), _figure(e, "dnsmos_sig"), _figure(e, "dnsmos_bak"), _figure(e, "dnsmos_p808"))
                for e in info.get("systems") or []]
        if any(f for _, *figs in more for f in figs):
            out.append("DNSMOS SIG / BAK / P.808: " + "; ".join(
                f"{_md(name)} {format_figure('dnsmos_sig', s)} / {format_figure('dnsmos_bak', b)} / "
                f"{format_figure('dnsmos_p808', p)}" for name, s, b, p in more) + ".")
            out.append("")
        table = md_paired_table(info.get("systems") or [])
        if table:
            against = next(e for e in info["systems"] if e.get("paired"))["paired"].get("against", "?")
            out += [f"Trial by trial against {_md(against)} (each system minus it on the trials both spoke, "
                    "95% bootstrap interval, trials each way):", ""] + table + [""]
    out += [f"![similarity and WER per system]({PLOT})", "", "## How to read this", ""]
    out += [f"- `{name}`: {_md(info.get('label', name))}" + (f"; unit {info['unit']}" if info.get("unit") else "")
            for name, info in (report.get("metric_info") or {}).items()]
    out += ["- ± is half the width of the 95% bootstrap interval over trials; WER/CER pool errors over trials.",
            "- n/a: the system does not apply to the trial (`real` where the voice never read the text).", ""]
    out += ["## Systems", ""]
    seen = set()
    for info in (report.get("sets") or {}).values():
        for entry in info.get("systems") or []:
            if entry.get("name") not in seen:
                seen.add(entry.get("name"))
                out.append(f"- **{_md(entry.get('name', '?'))}** ({_md(entry.get('kind', 'model'))}): "
                           f"{_md(entry.get('description', ''))}")
    if report.get("notes"):
        out += ["", "## Notes", ""] + [f"- {_md(note)}" for note in report["notes"]]
    failures = report.get("failures") or []
    out += ["", "## Failures", ""]
    out += [f"- {_md(f.get('system'))}, trial {_md(f.get('trial_id'))}: {_md(f.get('error'))}"
            for f in failures[:20]] or ["No trial failed."]
    if len(failures) > 20:
        out.append(f"- … and {len(failures) - 20} more")
    return "\n".join(out) + "\n"


def clone_figure(report: dict):
    """Per set (rows): similarity to the reference and to the other voices (left, with the
    goal and the cross-speaker level), WER (right, with the goal)."""
    from .clone_runner import GOALS

    sets = list((report.get("sets") or {}).items())
    fig = _new_figure(11.0, 3.6 * max(1, len(sets)))
    if not sets:
        fig.text(0.5, 0.5, "No results to plot", ha="center", va="center")
        return fig
    for row, (voice_set, info) in enumerate(sets):
        entries = info.get("systems") or []
        names = [e.get("name", "?") for e in entries]
        x = list(range(len(entries)))
        ax = fig.add_subplot(len(sets), 2, 2 * row + 1)
        for offset, metric, label, alpha in ((-0.2, "secs", "to the reference", 1.0),
                                             (0.2, "secs_other", "to the other voices", 0.45)):
            figures = [_figure(e, metric) for e in entries]
            values = [f["value"] if f else 0.0 for f in figures]
            errors = [[max(0.0, f["value"] - f["ci95"][0]) if f and f.get("ci95") else 0.0 for f in figures],
                      [max(0.0, f["ci95"][1] - f["value"]) if f and f.get("ci95") else 0.0 for f in figures]]
            ax.bar([i + offset for i in x], values, 0.4, yerr=errors, capsize=3, alpha=alpha, label=label,
                   color=[_system_color(i) for i in x], edgecolor="black", linewidth=0.5)
        ax.axhline(GOALS["secs"].get(voice_set, 0.75), color="green", linestyle="--", linewidth=1, label="goal")
        if info.get("cross_speaker_level") is not None:
            ax.axhline(info["cross_speaker_level"], color="gray", linestyle=":", linewidth=1.2,
                       label="cross-speaker level")
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.3)  # room above the bars for the legend
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_ylabel("GE2E cosine")
        ax.set_title(f"{voice_set} voices: similarity", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncol=2)
        ax = fig.add_subplot(len(sets), 2, 2 * row + 2)
        figures = [_figure(e, "wer") for e in entries]
        shown = [(i, f) for i, f in zip(x, figures) if f]
        ax.bar([i for i, _ in shown], [100 * f["value"] for _, f in shown], 0.6,
               color=[_system_color(i) for i, _ in shown], edgecolor="black", linewidth=0.5,
               yerr=[[100 * max(0.0, f["value"] - f["ci95"][0]) if f.get("ci95") else 0.0 for _, f in shown],
                     [100 * max(0.0, f["ci95"][1] - f["value"]) if f.get("ci95") else 0.0 for _, f in shown]],
               capsize=3)
        ax.axhline(100 * GOALS["wer"], color="green", linestyle="--", linewidth=1, label="goal")
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("WER %")
        ax.set_title(f"{voice_set} voices: word error rate ({report.get('asr') or 'no ASR'})", fontsize=10)
        ax.legend(fontsize=7)
    return fig


def write_clone_report(report: dict, out_dir: str | os.PathLike, rows: bool = True) -> dict[str, Path]:
    """report.json with the per-trial rows, report.md, report.html and the plot; with rows=False
    (published) report.json without the rows, report.md and the plot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report if rows else {**{k: v for k, v in report.items() if k != "trials"},
                                "per_trial_rows": f"{len(report.get('trials') or [])} rows, left out when published"}
    markdown = render_clone_markdown(data)
    page = render_html(data, out_dir) if rows else None  # the web demo renders a published report.json itself
    fig = clone_figure(data)
    fig.savefig(out_dir / PLOT, dpi=100)
    fig.clear()
    written = {"json": write_text_atomically(out_dir / "report.json",
                                             json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n"),
               "md": write_text_atomically(out_dir / "report.md", markdown), "plot": out_dir / PLOT}
    if page is not None:
        written["html"] = write_text_atomically(out_dir / "report.html", page)
    return written


def publish_clone_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Rebuild the report of `results_dir` from its rows and write it to `out_dir` without the
    per-trial rows; the protocol path is re-based onto `out_dir`. Returns the report."""
    from .clone_runner import rebuild_clone_report

    results_dir, out_dir = Path(results_dir), Path(out_dir)
    report = rebuild_clone_report(results_dir)
    protocol = dict(report["protocol"])
    protocol["path"] = os.path.relpath((results_dir / protocol["path"]).resolve(), out_dir.resolve())
    metadata = map_metadata_paths(protocol.get("metadata") or {}, lambda p: os.path.relpath(
        (results_dir / p).resolve(), out_dir.resolve()))
    protocol["metadata"] = metadata
    report["protocol"] = protocol
    write_clone_report(report, out_dir, rows=False)
    return report
