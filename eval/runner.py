"""The evaluation run: every system on every trial, cached, resumable, shardable.

    DIR/audio/SYSTEM/TRIAL-KEY.wav       each output, KEY a hash of the system and input files
    DIR/results/rows.rankR.jsonl         one JSON row per scored (system, trial), appended
    DIR/results/input-embeddings.json    GE2E embeddings of the protocol's clips, by content
    DIR/report.json, report.md, report.html

A row is appended (and flushed to disk) as soon as a trial is scored, so an interrupted run
loses at most the trial in progress. On the next run a trial whose key matches a stored ok
row is not run again; if it lacks a metric now asked for (or used another ASR) it is rescored
from its saved audio. A trial that raises is stored with its error and retried next time;
`redo` names systems whose stored rows are ignored, so they alone run again. A system with an
`applies(trial)` method is run only on the trials it applies to (no row for the others).
Process R of N (`accelerate launch`, or `shard=(R, N)`) takes every N-th trial and writes its
own rows file; the report reads all of them.

Any protocol with `.trials`, systems with `name`, `kind`, `vocoder`, `run(trial)` and
`trial_key(trial, digest)`, and a scorer like `Scorer` (its `trial_metrics`, default
`TRIAL_METRICS`, are the per-trial metrics it computes) can be run: the cloning evaluation
(`eval.clone_runner`) runs text-to-speech systems through it.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import psutil
from tqdm.auto import tqdm

from vc.audio import Audio, load_audio

from .protocol import Protocol, Trial
from .scoring import TRIAL_METRICS, Scorer
from .systems import System

ROWS_PATTERN = "rows.rank*.jsonl"


def slug(name: str) -> str:
    """A file-name-safe form of a system name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "system"


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every few milliseconds (torch's
    CPU allocations are invisible to tracemalloc, so the process RSS is what is measured)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak_mb = interval, 0.0
        self._process, self._stop = psutil.Process(), threading.Event()

    def __enter__(self) -> "PeakMemory":
        self._start = self._process.memory_info().rss
        self._peak = self._start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mb = (self._peak - self._start) / 2 ** 20


class ResultStore:
    """The rows of one output folder: read from every rank's file, appended to this rank's."""

    def __init__(self, out_dir: str | os.PathLike, rank: int = 0):
        self.folder = Path(out_dir) / "results"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"rows.rank{rank}.jsonl"

    def load(self) -> dict[tuple[str, str], dict]:
        """(system, trial_id) -> its latest row; an ok row beats a failed one for the same key.

        "Latest" is by the time a row was written, across every rank's file: a resumed run may
        rescore on rank 0 a row that a sharded run wrote on rank 3. Rows from before the time
        was recorded count as older than any timed row, in file order.
        """
        found = []
        for path in sorted(self.folder.glob(ROWS_PATTERN)):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                found.append((float(row.get("written", float("-inf"))), len(found), row))
        rows: dict[tuple[str, str], dict] = {}
        for _, _, row in sorted(found, key=lambda item: item[:2]):
            where = (row["system"], row["trial_id"])
            old = rows.get(where)
            if old and old["key"] == row["key"] and old["status"] == "ok" and row["status"] != "ok":
                continue
            rows[where] = row
        return rows

    def append(self, row: dict) -> None:
        row = {**row, "written": time.time()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class RunCounts:
    converted: int = 0
    rescored: int = 0
    reused: int = 0
    failed: int = 0


def _trial_metrics(scorer: Scorer) -> set[str]:
    return set(getattr(scorer, "trial_metrics", TRIAL_METRICS))


def _needs_rescoring(row: dict, scorer: Scorer) -> bool:
    done = set(row.get("scored", ()))
    asked = scorer.metrics & _trial_metrics(scorer)
    if not asked <= done:
        return True
    words = bool(asked & {"wer", "cer"}) and scorer.recogniser is not None
    return words and (row.get("asr") != scorer.asr_name
                      or bool(row.get("asr_reference")) != scorer.asr_reference)


def run_trials(protocol: Protocol, systems: Sequence[System], scorer: Scorer, out_dir: str | os.PathLike,
               rank: int = 0, world: int = 1, show_progress: bool = True,
               on_row: Callable[[dict], None] | None = None, redo: Iterable[str] = ()) -> RunCounts:
    """Run and score this rank's share of (system, trial) pairs; rows go to the store.
    Systems named in `redo` run again on every trial, whatever is stored."""
    out_dir = Path(out_dir)
    redo = set(redo)
    store = ResultStore(out_dir, rank)
    existing = store.load()
    # content-addressed: an output made under another name (same weights, same inputs) is reused
    by_key = {row["key"]: row for row in existing.values() if row["status"] == "ok"}
    trials = protocol.trials[rank::world]
    counts = RunCounts()
    warm: set[str] = set()
    bar = tqdm(total=len(trials) * len(systems), desc="evaluating", unit="trial", disable=not show_progress)
    try:
        for system in systems:
            bar.set_postfix_str(system.name)
            for trial in trials:
                applies = getattr(system, "applies", None)
                if applies is not None and not applies(trial):  # e.g. a recording this trial lacks
                    bar.update(1)
                    continue
                again = system.name in redo
                row = _one_trial(system, trial, scorer, out_dir,
                                 None if again else existing.get((system.name, trial.trial_id)), counts, warm,
                                 {} if again else by_key)
                if row is not None:
                    store.append(row)
                    if row["status"] == "ok":
                        by_key[row["key"]] = row
                    if on_row:
                        on_row(row)
                bar.update(1)
    finally:
        bar.close()
        scorer.save_cache()
    return counts


def _one_trial(system: System, trial: Trial, scorer: Scorer, out_dir: Path, old: dict | None,
               counts: RunCounts, warm: set[str], by_key: dict[str, dict]) -> dict | None:
    key = system.trial_key(trial, scorer.digest)
    audio_path = out_dir / "audio" / slug(system.name) / f"{slug(trial.trial_id)}-{key[:12]}.wav"
    adopted = False
    if not (old and old["key"] == key) and key in by_key:  # the same system under another name
        old, adopted = {**by_key[key], "system": system.name, "trial_id": trial.trial_id}, True
    if old and old["key"] == key and old["status"] == "ok" and (out_dir / old["audio"]).is_file():
        audio_path = out_dir / old["audio"]
        if not _needs_rescoring(old, scorer):
            counts.reused += 1
            return old if adopted else None
        row = dict(old)
        try:
            output = load_audio(audio_path)
            start = time.perf_counter()
            metrics, transcript = _scored(system, trial, scorer, output, old)
            row["score_seconds"] = time.perf_counter() - start
            # what was not asked for again is kept: rescoring WER alone keeps similarity, MCD, ...
            kept = {k: v for k, v in old["metrics"].items() if k not in _recomputed(scorer)}
            row["metrics"] = {**kept, **metrics}
            if scorer.metrics & {"wer", "cer"}:
                row["transcript"] = transcript
            row.update(scored=sorted((set(old.get("scored", ())) | scorer.metrics) & _trial_metrics(scorer)),
                       **_asr_fields(scorer, old))
            counts.rescored += 1
            return row
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            return _failed(system, trial, key, err, out_dir, counts)
    if system.name not in warm:  # first calls pay one-off costs (allocator, caches): not timed
        warm.add(system.name)
        try:
            system.run(trial)
        except Exception:  # noqa: BLE001 - the timed run below records the error
            pass
    try:
        with PeakMemory() as memory:
            start = time.perf_counter()
            output = system.run(trial)
            seconds = time.perf_counter() - start
        output.save(audio_path)  # atomic: a crash never leaves half a wav behind
        start_scoring = time.perf_counter()
        metrics, transcript = _scored(system, trial, scorer, output, None)
        score_seconds = time.perf_counter() - start_scoring
        if system.kind != "baseline" or system.vocoder:
            metrics["rtf"] = seconds / max(output.duration, 1e-9)
            metrics["peak_mem_mb"] = memory.peak_mb
    except Exception as err:  # noqa: BLE001 - recorded, the run goes on
        return _failed(system, trial, key, err, out_dir, counts)
    counts.converted += 1
    return {"system": system.name, "trial_id": trial.trial_id, "key": key, "status": "ok", "error": None,
            "audio": audio_path.relative_to(out_dir).as_posix(), "seconds": seconds,
            "audio_seconds": output.duration, "score_seconds": score_seconds, "metrics": metrics,
            "transcript": transcript, "scored": sorted(scorer.metrics & _trial_metrics(scorer)),
            **_asr_fields(scorer, None)}


def _recomputed(scorer: Scorer) -> set[str]:
    """Row metric keys a scoring with these metrics writes (WER brings its error counts)."""
    keys = set(scorer.metrics)
    if keys & {"wer", "cer"}:
        keys |= {"wer", "cer", "word_errors", "words", "char_errors", "chars"}
    return keys


def _asr_fields(scorer: Scorer, old: dict | None) -> dict:
    """Which recogniser (and reference rule) the row's WER is from; kept when WER was not redone."""
    if old is not None and not scorer.metrics & {"wer", "cer"}:
        return {"asr": old.get("asr"), "asr_reference": old.get("asr_reference", False)}
    return {"asr": scorer.asr_name, "asr_reference": scorer.asr_reference}


def _scored(system: System, trial: Trial, scorer: Scorer, output: Audio, old: dict | None):
    metrics, transcript = scorer.score(system, trial, output)
    if old:  # speed was measured when the output was made; keep it
        metrics.update({k: v for k, v in old["metrics"].items() if k in ("rtf", "peak_mem_mb")})
    return metrics, transcript


def _failed(system: System, trial: Trial, key: str, err: Exception, out_dir: Path, counts: RunCounts) -> dict:
    counts.failed += 1
    log = out_dir / "results" / "errors.log"
    with open(log, "a", encoding="utf-8") as handle:  # the whole traceback, for whoever debugs it
        handle.write(f"== {system.name} / {trial.trial_id}\n{traceback.format_exc()}\n")
    return {"system": system.name, "trial_id": trial.trial_id, "key": key, "status": "failed",
            "error": f"{type(err).__name__}: {err}", "audio": None, "seconds": None,
            "audio_seconds": None, "metrics": {}, "transcript": None, "scored": [], "asr": None}


def rows_for(store_rows: dict[tuple[str, str], dict], systems: Iterable[System],
             protocol: Protocol) -> list[dict]:
    """The current rows of these systems on this protocol's trials, in protocol order."""
    ordered = []
    for system in systems:
        for trial in protocol:
            row = store_rows.get((system.name, trial.trial_id))
            if row is not None:
                ordered.append(row)
    return ordered
