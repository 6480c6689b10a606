"""The whole evaluation, and the report it leaves: `evaluate()` is what `python -m eval run` does.

    report = evaluate("runs/protocol.json", ["vqvc-small"], "runs/eval", asr="pocketsphinx")
    report["systems"][0]["metrics"]["secs"]    # {"value": 0.61, "ci95": [0.58, 0.64], "n": 50}

report.json holds, per system (baselines first), each metric's value, 95% interval and the
number of trials (or ABX items) behind it, plus every per-trial row; report.md and the
self-contained report.html are rendered from it by `eval.render`.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch

from vc import VoicelabError, __version__, load_audio
from vc.hub import write_text_atomically

from .content_metrics import MIN_ABX_RATE, AbxSet, content_figures
from .protocol import Protocol
from .render import render_markdown, write_report_files
from .runner import ResultStore, run_trials, slug
from .scoring import METRICS, NATURALNESS_METRICS, Scorer, expand_metrics
from .summary import add_paired, summarise_system, verification_threshold
from .systems import System, build_systems

FORMAT = "voicelab-eval-report"
VERSION = 1


def evaluate(protocol_path: str | os.PathLike, models: Sequence[str], out_dir: str | os.PathLike, *,
             asr: str | None = "auto", naturalness: str | None = "dnsmos",
             metrics: Sequence[str] | None = None, baselines: bool = True,
             device: str = "cpu", examples: int = 4, abx_per_speaker: int = 8, rank: int = 0, world: int = 1,
             show_progress: bool = True, wait_for_others=None) -> dict | None:
    """Run every system on the protocol's trials (this rank's share) and, on rank 0, write the
    report. `wait_for_others` is called between the two when several processes share the work.

    asr: an `eval.asr` name, "auto" (whisper-base when its weights are here, else pocketsphinx,
        with a note in the report) or None (no WER/CER).
    naturalness: "dnsmos" or None (no dnsmos_* figures).
    Returns the report (None on other ranks)."""
    protocol = Protocol.load(protocol_path)
    wanted = expand_metrics(metrics)
    if naturalness is None:
        wanted = [m for m in wanted if m not in NATURALNESS_METRICS]
    elif naturalness != "dnsmos":
        raise ValueError(f"unknown naturalness rater {naturalness!r}; use 'dnsmos' or None")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    systems = build_systems(models, baselines=baselines, device=device)
    recogniser, notes = None, []
    if asr and {"wer", "cer"} & set(wanted):
        from .asr import default_asr, load_recogniser
        if asr == "auto":
            asr, note = default_asr()
            notes += [note] if note else []
        recogniser = load_recogniser(asr)
    rater = None
    if set(NATURALNESS_METRICS) & set(wanted):
        from .naturalness import DnsMos
        rater = DnsMos(threads=torch.get_num_threads())
    wer_reference = protocol.metadata.get("wer_reference", "transcript")
    scorer = Scorer(wanted, recogniser, device=device, cache_dir=out_dir / "results", rater=rater,
                    asr_reference=wer_reference in ("asr-of-source", "mixed"))
    counts = run_trials(protocol, systems, scorer, out_dir, rank, world, show_progress)
    if wait_for_others is not None:
        wait_for_others()
    if rank != 0:
        return None
    abx_set = None
    if {"abx_within", "abx_across", "bitrate"} & set(wanted):
        abx_set = AbxSet.from_protocol(protocol, per_speaker=abx_per_speaker)
    report = build_report(protocol, Path(protocol_path), systems, scorer, wanted, out_dir, abx_set, examples)
    report["notes"] = notes + report["notes"]
    report["run"] = {"converted": counts.converted, "rescored": counts.rescored, "reused": counts.reused,
                     "failed": counts.failed, "device": device, "processes": world}
    write_report(report, out_dir)
    return report


def build_report(protocol: Protocol, protocol_path: Path, systems: Sequence[System], scorer: Scorer,
                 metrics: Sequence[str], out_dir: Path, abx_set: AbxSet | None = None,
                 examples: int = 4) -> dict:
    """The report dict from the stored rows (only rows made from the current inputs count)."""
    stored = ResultStore(out_dir).load()
    rows_by_system: dict[str, list[dict]] = defaultdict(list)
    for system in systems:
        for trial in protocol:
            row = stored.get((system.name, trial.trial_id))
            if row is not None and row["key"] == system.trial_key(trial, scorer.digest):
                rows_by_system[system.name].append(row)
    sv = _verification(protocol, scorer) if "sv_accept" in metrics else None
    entries, notes = [], []
    for system in systems:
        entry = {**system.info(), **summarise_system(metrics, rows_by_system[system.name],
                                                     sv["threshold"] if sv else None)}
        entry["not_run"] = len(protocol) - entry["trials"]
        timed = [r["score_seconds"] for r in rows_by_system[system.name] if r.get("score_seconds") is not None]
        if timed:  # the scoring itself (similarity, ASR, DNSMOS, MCD, F0), per trial
            entry["score_seconds_per_trial"] = sum(timed) / len(timed)
        if abx_set is not None:
            figures, content_notes = _cached_content(system, abx_set, metrics, out_dir)
            entry["metrics"].update(figures)
            notes.extend(content_notes)
        entries.append(entry)
    add_paired(entries, rows_by_system)
    if abx_set is not None and abx_set.missing:
        notes.append(f"ABX and bitrate left out: {abx_set.missing}")
    if scorer.recogniser is None and {"wer", "cer"} & set(metrics):
        notes.append("WER/CER left out: no ASR backend was given")
    if scorer.asr_reference and scorer.recogniser is not None:
        untranscribed = sum(not t.source_text for t in protocol)
        notes.append(f"WER/CER of the {untranscribed} trial(s) whose source has no transcript are measured "
                     f"against {scorer.asr_name}'s transcript of the unconverted source (so the source row "
                     "scores 0 there by construction); the others against the source transcript")
    rows = [r for name in rows_by_system for r in rows_by_system[name]]
    return {
        "format": FORMAT, "version": VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "voicelab_version": __version__,
        "protocol": {"path": os.path.relpath(protocol_path.resolve(), out_dir.resolve()),
                     "trials": len(protocol), "metadata": _portable_metadata(protocol.metadata, out_dir)},
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "asr": scorer.asr_name, "sv_threshold": sv, "notes": notes,
        "metric_info": {m: dict(zip(("label", "better", "unit"), METRICS[m])) for m in metrics},
        "systems": entries,
        "failures": [{"system": r["system"], "trial_id": r["trial_id"], "error": r["error"]}
                     for r in rows if r["status"] != "ok"],
        "trials": rows,
        "examples": _examples(protocol, systems, rows_by_system, out_dir, examples),
    }


def publish_report(report_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """A summary of a run for others to read (the web demo's Results tab, a repository):
    report.json without the per-trial rows and listening examples, and report.md. The run
    folder keeps everything; paths are re-based onto the new folder."""
    from .card import read_report

    report_dir, out_dir = Path(report_dir), Path(out_dir)
    report = read_report(report_dir)
    if not any(entry.get("paired") for entry in report.get("systems", [])):  # a run made before pairing
        rows_by_system = defaultdict(list)
        for row in report.get("trials", []):
            rows_by_system[row["system"]].append(row)
        add_paired(report.get("systems", []), rows_by_system)
    summary = {k: v for k, v in report.items() if k not in ("trials", "examples")}
    summary["per_trial_rows"] = f"{len(report.get('trials', []))} rows, left out when published"
    rebase = lambda rel: os.path.relpath((report_dir / rel).resolve(), out_dir.resolve())
    protocol = summary["protocol"] = dict(report["protocol"])
    protocol["path"] = rebase(protocol["path"])
    protocol["metadata"] = _portable_metadata(protocol.get("metadata", {}), out_dir,
                                              lambda p: (report_dir / p).resolve())
    write_text_atomically(out_dir / "report.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return write_text_atomically(out_dir / "report.md", render_markdown(summary))


def _portable_metadata(metadata: dict, out_dir: Path, locate=lambda p: Path(p).resolve()) -> dict:
    """The protocol's metadata with its corpus paths relative to the report folder, so a report
    names no machine's absolute paths (and still points at the corpora when moved with them)."""
    def relative(path: str) -> str:
        return os.path.relpath(locate(path), out_dir.resolve())
    portable = dict(metadata)
    if isinstance(portable.get("corpora"), list):
        portable["corpora"] = [relative(p) for p in portable["corpora"]]
    for key in ("root", "alignments", "texts"):
        if isinstance(portable.get(key), str):
            portable[key] = relative(portable[key])
    return portable


def write_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """report.json (atomically), then report.md and report.html."""
    out_dir = Path(out_dir)
    path = write_text_atomically(out_dir / "report.json",
                                 json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    return {"json": path, **write_report_files(report, out_dir)}


def _verification(protocol: Protocol, scorer: Scorer) -> dict | None:
    """EER threshold on the protocol's own real clips (sources, references, parallels)."""
    clips: dict[str, set[Path]] = defaultdict(set)
    for trial in protocol:
        clips[trial.source_speaker].add(trial.source_path)
        clips[trial.target_speaker].update(trial.reference_paths)
        if trial.parallel_path is not None:
            clips[trial.target_speaker].add(trial.parallel_path)
    k = max(len(t.reference_paths) for t in protocol)
    embeddings, skipped = defaultdict(list), []
    for speaker, paths in clips.items():
        for path in sorted(paths):
            try:
                embeddings[speaker].append(scorer.input_embedding(path))
            except VoicelabError as err:  # an unusable clip (silent, unreadable) is left out
                skipped.append(f"{path.name}: {err}")
    scorer.save_cache()
    try:
        result = verification_threshold(embeddings, references=k)
    except ValueError as err:  # the accept rate is lost, not the report
        return {"threshold": None, "error": str(err), "skipped_clips": skipped}
    return {**result, "skipped_clips": skipped}


def _cached_content(system: System, abx_set: AbxSet, metrics: Sequence[str], out_dir: Path
                    ) -> tuple[dict, list[str]]:
    """Content figures and notes, cached per system identity and item set."""
    wanted = sorted(m for m in ("abx_within", "abx_across", "bitrate") if m in metrics)
    key = f"{system.identity[:16]}-{len(abx_set.items)}-{'-'.join(wanted)}-{MIN_ABX_RATE}"
    path = out_dir / "results" / f"content-{slug(system.name)}.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["figures"], cached.get("notes", [])
    figures, notes = content_figures(system, abx_set, wanted)
    write_text_atomically(path, json.dumps({"key": key, "figures": figures, "notes": notes}))
    return figures, notes


def _examples(protocol: Protocol, systems: Sequence[System], rows_by_system: dict[str, list[dict]],
              out_dir: Path, count: int) -> list[dict]:
    """A few trials every system converted, with their inputs copied beside the report."""
    ok = {name: {r["trial_id"]: r for r in rows if r["status"] == "ok"} for name, rows in rows_by_system.items()}
    chosen = []
    for trial in protocol:
        if len(chosen) == count:
            break
        if not all(trial.trial_id in ok.get(s.name, {}) for s in systems):
            continue
        inputs = {}
        for role, path in (("source", trial.source_path), ("reference", trial.reference_paths[0])):
            copy = out_dir / "audio" / "inputs" / f"{slug(trial.trial_id)}-{role}.wav"
            if not copy.is_file():
                load_audio(path).save(copy)
            inputs[role] = copy.relative_to(out_dir).as_posix()
        chosen.append({"trial_id": trial.trial_id, "text": trial.source_text,
                       "source_speaker": trial.source_speaker, "target_speaker": trial.target_speaker,
                       **inputs, "outputs": {s.name: ok[s.name][trial.trial_id]["audio"] for s in systems}})
    return chosen
