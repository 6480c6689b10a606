"""The cloning evaluation: every system speaks every trial's text in its voice, scored like a
conversion. `evaluate_cloning()` is what `python -m eval clone-run` does.

    report = evaluate_cloning("runs/clone.json", ["synth-small+hifigan-fast", "real"], "runs/eval-clone")
    report["sets"]["real"]["systems"][0]["metrics"]["secs"]    # {"value": 0.71, "ci95": [...], "n": 25}

The run itself is `eval.runner.run_trials` (resumable, one JSON row per trial, outputs cached by
content: DIR/audio/SYSTEM/, DIR/results/rows.rank0.jsonl), with `CloneScorer` for the scores:

- `secs`: GE2E cosine between the output and the mean embedding of the trial's reference clips;
- `secs_other`: the mean cosine between the output and each other voice of the trial's set (its
  centroid over the clips the protocol uses as its references). The set's *cross-speaker level*
  is the same figure for real clips: a voice's clips against the other voices' centroids. An
  output near that level sounds like its own speaker and not like a generic average voice;
- `sv_accept`: `secs` at or above the set's equal-error-rate threshold, measured on the real
  clips of the set's voices (references and readings), k references against one clip;
- `wer`/`cer`: ASR of the output against the typed text, both normalised (`eval.intelligibility`);
- `dnsmos_*`: DNSMOS P.835 and P.808; `rtf`: compute seconds per second of output.

DIR/results/clone-run.json records the protocol and systems of the latest run, so
`clone-report` can rebuild the report from the rows without loading a model.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vc import VoicelabError, __version__
from vc.hub import write_text_atomically
from vc.speaker import cosine

from .clone_protocol import TYPED, CloneProtocol, map_metadata_paths
from .clone_systems import CloneSystem, SystemRecord, build_clone_systems, parse_cascade
from .intelligibility import normalize_text
from .runner import ResultStore, run_trials
from .scoring import METRICS, NATURALNESS_METRICS, Scorer, error_counts
from .summary import add_paired, summarise_system, verification_threshold

FORMAT = "voicelab-clone-report"
VERSION = 1
RUN_RECORD = "clone-run.json"

# name -> (label, better, unit), in report order
CLONE_METRICS = {
    "secs": ("Similarity to the reference voice (GE2E cosine)", "higher", "cosine"),
    "secs_other": ("Similarity to the set's other voices (mean GE2E cosine; goal: near the cross-speaker level)",
                   "lower", "cosine"),
    "sv_accept": ("Accepted as the reference voice at the set's EER threshold", "higher", "fraction"),
    "wer": METRICS["wer"], "cer": METRICS["cer"],
    **{m: METRICS[m] for m in NATURALNESS_METRICS},
    "rtf": ("Compute seconds per second of speech", "lower", "ratio"),
    "peak_mem_mb": METRICS["peak_mem_mb"],
}
TRIAL_METRICS = ("secs", "secs_other", "wer", "cer", *NATURALNESS_METRICS)

# The goals; "near the cross-speaker level" is read as at most this much above it.
GOALS = {"wer": 0.10, "secs": {"real": 0.75, "synthetic": 0.80}, "secs_other_margin": 0.05}


def goal_lines(levels: dict[str, float | None] | None = None) -> list[str]:
    """The goals as sentences, with each set's cross-speaker level where known."""
    levels = levels or {}
    known = ", ".join(f"{s} {v:.3f}" for s, v in levels.items() if v is not None)
    return [f"WER ≤ {GOALS['wer']:.0%} (Whisper, normalised text)",
            f"similarity to the reference ≥ {GOALS['secs']['real']:.2f} on real unseen voices, "
            f"≥ {GOALS['secs']['synthetic']:.2f} on synthetic unseen voices",
            "similarity to the other speakers near the cross-speaker level (here: at most "
            f"{GOALS['secs_other_margin']:.2f} above it{'; the levels are ' + known if known else ''})"]


class CloneScorer(Scorer):
    """`Scorer` for text-to-speech outputs: see the module docstring for the metrics."""

    trial_metrics = TRIAL_METRICS

    def __init__(self, protocol: CloneProtocol, metrics: Sequence[str], recogniser=None, device: str = "cpu",
                 cache_dir: str | os.PathLike | None = None, rater=None):
        super().__init__(metrics, recogniser, device=device, cache_dir=cache_dir, rater=rater)
        self.protocol = protocol

    def voice_embedding(self, voice: str) -> np.ndarray:
        """The unit centroid of the voice's clips (the protocol's references of it)."""
        return self.target_embedding(self.protocol.voices[voice].clips)

    def score(self, system: CloneSystem, trial, output) -> tuple[dict[str, float], str | None]:
        values: dict[str, float] = {}
        wanted = self.metrics
        if wanted & {"secs", "secs_other", "sv_accept"}:
            embedding = self.encoder.embed(output)
            values["secs"] = cosine(embedding, self.target_embedding(system.references_for(trial)))
            others = [v for v in self.protocol.voices_in(trial.voice_set) if v != trial.voice]
            if "secs_other" in wanted and others:
                values["secs_other"] = float(np.mean([cosine(embedding, self.voice_embedding(v)) for v in others]))
        transcript = None
        text = normalize_text(system.expected_text(trial)) if wanted & {"wer", "cer"} else ""
        if text and self.recogniser is not None:
            transcript = self.recogniser.transcribe(output)
            values.update(error_counts(text, normalize_text(transcript)))
        if wanted & set(NATURALNESS_METRICS) and self.rater is not None:
            values.update((k, v) for k, v in self.rater.rate(output).items() if k in wanted)
        return values, transcript


def wanted_metrics(asr: str | None, naturalness: str | None) -> list[str]:
    metrics = list(CLONE_METRICS)
    if naturalness is None:
        metrics = [m for m in metrics if m not in NATURALNESS_METRICS]
    elif naturalness != "dnsmos":
        raise ValueError(f"unknown naturalness rater {naturalness!r}; use 'dnsmos' or None")
    if asr is None:
        metrics = [m for m in metrics if m not in ("wer", "cer")]
    return metrics


def evaluate_cloning(protocol_path: str | os.PathLike, systems: Sequence[str], out_dir: str | os.PathLike, *,
                     asr: str | None = "auto", naturalness: str | None = "dnsmos", device: str = "cpu",
                     redo: Sequence[str] = (), show_progress: bool = True) -> dict:
    """Run and score `systems` on the protocol (resuming in `out_dir`), write the report there
    (report.json with every row, report.md, report.html, similarity-wer.png) and return it.
    `redo`: systems to run again on every trial, whatever is stored."""
    from .clone_report import write_clone_report

    protocol = CloneProtocol.load(protocol_path)
    systems = list(systems)
    unknown = sorted(set(redo) - set(systems))
    if unknown:
        raise ValueError(f"--redo {' '.join(unknown)}: not among --systems ({' '.join(systems)})")
    for spec in systems:  # syntax errors before anything is loaded
        if spec.split(":", 1)[0] == "cascade":
            parse_cascade(spec)
    metrics = wanted_metrics(asr, naturalness)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recogniser, notes = None, []
    if asr is not None:
        from .asr import default_asr, load_recogniser
        if asr == "auto":
            asr, note = default_asr()
            notes += [note] if note else []
        recogniser = load_recogniser(asr)
    rater = None
    if set(NATURALNESS_METRICS) & set(metrics):
        from .naturalness import DnsMos
        rater = DnsMos(threads=torch.get_num_threads())
    scorer = CloneScorer(protocol, metrics, recogniser, device=device, cache_dir=out_dir / "results", rater=rater)
    built = build_clone_systems(systems, device, scorer.encoder, work_dir=out_dir / "work")
    try:
        record = {"protocol": os.path.relpath(Path(protocol_path).resolve(), out_dir.resolve()),
                  "systems": [s.info() for s in built], "asr": scorer.asr_name, "metrics": metrics}
        write_text_atomically(out_dir / "results" / RUN_RECORD, json.dumps(record, indent=1) + "\n")
        counts = run_trials(protocol, built, scorer, out_dir, show_progress=show_progress, redo=redo)
    finally:
        for system in built:
            system.close()
    report = build_clone_report(protocol, Path(protocol_path), built, scorer, metrics, out_dir)
    report["notes"] = notes + report["notes"]
    report["run"] = {"converted": counts.converted, "rescored": counts.rescored, "reused": counts.reused,
                     "failed": counts.failed, "device": device, "processes": 1}
    write_clone_report(report, out_dir)
    return report


def rebuild_clone_report(results_dir: str | os.PathLike) -> dict:
    """The report of a results folder from its stored rows, as its latest run recorded it
    (also while that run is still going); no model is loaded."""
    results_dir = Path(results_dir)
    path = results_dir / "results" / RUN_RECORD
    if not path.is_file():
        raise VoicelabError(f"{results_dir} holds no cloning run (no results/{RUN_RECORD}); run "
                            "`python -m eval clone-run --out DIR ...` first")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise VoicelabError(f"{path} is not readable ({err})") from None
    protocol_path = (results_dir / record["protocol"]).resolve()
    protocol = CloneProtocol.load(protocol_path)
    systems = [SystemRecord(info) for info in record["systems"]]
    scorer = CloneScorer(protocol, [m for m in record["metrics"] if m in ("secs", "sv_accept")],
                         cache_dir=results_dir / "results")
    scorer.asr_name = record.get("asr")
    report = build_clone_report(protocol, protocol_path, systems, scorer, record["metrics"], results_dir)
    report["run"] = {"rows": len(report["trials"]), "device": "cpu", "processes": 1}
    return report


def build_clone_report(protocol: CloneProtocol, protocol_path: Path, systems: Sequence[CloneSystem],
                       scorer: CloneScorer, metrics: Sequence[str], out_dir: Path) -> dict:
    """The report dict from the stored rows (only rows made from the current inputs count)."""
    stored = ResultStore(out_dir).load()
    sets, flat, rows_all = {}, [], []
    for voice_set in protocol.sets():
        trials = [t for t in protocol if t.voice_set == voice_set]
        levels = _levels(protocol, voice_set, scorer)
        sv = _verification(protocol, voice_set, scorer)
        entries, rows_by_system = [], {}
        for system in systems:
            applicable = [t for t in trials if system.applies(t)]
            rows = []
            for trial in applicable:
                row = stored.get((system.name, trial.trial_id))
                if row is not None and row["key"] == system.trial_key(trial, scorer.digest):
                    rows.append(row)
            rows_all += rows
            rows_by_system[system.name] = rows
            entry = {**system.info(), **summarise_system(metrics, rows, sv.get("threshold"))}
            entry.update(applicable=len(applicable), not_applicable=len(trials) - len(applicable),
                         not_run=len(applicable) - len(rows))
            entry["goals"] = _goals_met(entry, voice_set, levels["cross_speaker_level"])
            entries.append(entry)
        add_paired(entries, rows_by_system)
        flat += [{**entry, "name": f"{entry['name']} [{voice_set} voices]", "set": voice_set} for entry in entries]
        sets[voice_set] = {"trials": len(trials), "voices": len(protocol.voices_in(voice_set)), **levels,
                           "sv_threshold": sv, "systems": entries,
                           "texts": _text_mix(trials)}
    scorer.save_cache()
    notes = _notes(protocol, sets)
    return {
        "format": FORMAT, "version": VERSION, "title": "Text cloning evaluation",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "voicelab_version": __version__,
        "protocol": {"path": os.path.relpath(protocol_path.resolve(), out_dir.resolve()), "trials": len(protocol),
                     "metadata": map_metadata_paths(protocol.metadata, lambda p: os.path.relpath(
                         Path(p).resolve(), out_dir.resolve()))},
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "asr": scorer.asr_name, "goals": GOALS,
        "goal_lines": goal_lines({s: v["cross_speaker_level"] for s, v in sets.items()}),
        "notes": notes,
        "metric_info": {m: dict(zip(("label", "better", "unit"), CLONE_METRICS[m])) for m in metrics},
        "sets": sets,
        "systems": flat,  # every (system, set) as one entry: what eval.render and the web demo show
        "failures": [{"system": r["system"], "trial_id": r["trial_id"], "error": r["error"]}
                     for r in rows_all if r["status"] != "ok"],
        "trials": rows_all,
    }


def _levels(protocol: CloneProtocol, voice_set: str, scorer: CloneScorer) -> dict:
    """The set's cross-speaker level (a voice's clips against the other voices' centroids) and
    same-speaker level (a clip against the centroid of its voice's other clips)."""
    voices = protocol.voices_in(voice_set)
    clips = {v: [scorer.input_embedding(p) for p in protocol.voices[v].clips] for v in voices}
    cross = [float(c @ scorer.voice_embedding(b)) for a in voices for c in clips[a] for b in voices if b != a]
    same = []
    for v in voices:
        for i, c in enumerate(clips[v]):
            rest = [e for j, e in enumerate(clips[v]) if j != i]
            if rest:
                mean = np.mean(rest, axis=0)
                same.append(float(c @ (mean / np.linalg.norm(mean))))
    return {"cross_speaker_level": float(np.mean(cross)) if cross else None,
            "same_speaker_level": float(np.mean(same)) if same else None}


def _verification(protocol: CloneProtocol, voice_set: str, scorer: CloneScorer) -> dict:
    """The EER threshold on the set's real clips (references and readings), k against one."""
    embeddings: dict[str, list[np.ndarray]] = defaultdict(list)
    paths: dict[str, set[Path]] = defaultdict(set)
    for trial in protocol:
        if trial.voice_set == voice_set:
            paths[trial.voice].update(trial.reference_paths)
            if trial.real_path is not None:
                paths[trial.voice].add(trial.real_path)
    skipped = []
    for voice, files in paths.items():
        for path in sorted(files):
            try:
                embeddings[voice].append(scorer.input_embedding(path))
            except VoicelabError as err:
                skipped.append(f"{path.name}: {err}")
    k = max(len(t.reference_paths) for t in protocol if t.voice_set == voice_set)
    try:
        return {**verification_threshold(embeddings, references=k), "skipped_clips": skipped}
    except ValueError as err:
        return {"threshold": None, "error": str(err), "skipped_clips": skipped}


def _goals_met(entry: dict, voice_set: str, level: float | None) -> dict[str, bool]:
    figures = entry.get("metrics", {})
    met = {}
    if "secs" in figures:
        met["similarity"] = figures["secs"]["value"] >= GOALS["secs"][voice_set]
    if "wer" in figures:
        met["wer"] = figures["wer"]["value"] <= GOALS["wer"]
    if "secs_other" in figures and level is not None:
        met["other_speakers"] = figures["secs_other"]["value"] <= level + GOALS["secs_other_margin"]
    return met


def _text_mix(trials) -> dict[str, int]:
    mix: dict[str, int] = defaultdict(int)
    for trial in trials:
        corpus = trial.text_source.split(":", 1)[0] or "?"
        mix[corpus if trial.text_origin == TYPED else f"{corpus} ({trial.text_origin} transcript)"] += 1
    return dict(sorted(mix.items()))


def _notes(protocol: CloneProtocol, sets: dict) -> list[str]:
    notes = list(protocol.metadata.get("notes") or [])
    asr_texts = sorted({t.text_origin for t in protocol if t.text_origin != TYPED})
    if asr_texts:
        count = sum(t.text_origin != TYPED for t in protocol)
        notes.append(f"{count} trial texts are {', '.join(asr_texts)} transcripts of LibriSpeech recordings (the "
                     "corpus copy here has no typed transcripts): on them the real recording's WER is near 0 by "
                     "construction, and the recogniser's mishearings are part of the text")
    if any(t.real_kind == "rendered" for t in protocol):
        notes.append("the real reading of a synthetic voice is that voice's own engine rendering of the text "
                     "(made when the protocol was built, as the corpus's clips were)")
    if not protocol.metadata.get("excluded_texts"):
        notes.append("the texts were not checked against any model's training data (clone-protocol "
                     "--exclude-texts)")
    for voice_set, info in sets.items():
        sv = info["sv_threshold"]
        if sv.get("threshold") is None:
            notes.append(f"{voice_set} voices: no verification threshold ({sv.get('error')})")
    return notes
