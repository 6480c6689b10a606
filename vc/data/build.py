"""Build a multi-speaker synthetic corpus offline with Debian's speech synthesisers.

    DIR/wavs/SPEAKER/UTTID.wav    16 kHz mono 16-bit
    DIR/wavs/SPEAKER/UTTID.json   what was rendered (text, voice, alignment): lets a re-run
                                  skip finished work and rebuild the manifest without the engines
    DIR/manifest.jsonl            one row per utterance (path relative to DIR, speaker, text,
                                  alignment, engine, voice, split, sentence_id, parallel, ...)
    DIR/corpus.json               the build parameters and the speaker list

Every voice reads the same first sentences (the parallel subset, `parallel: true`, sharing a
`sentence_id`), then sentences of its own. The same seed gives the same sentences, voices,
split and manifest; a re-run renders only what is missing or stale.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import multiprocessing
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vc.errors import VoicelabError
from vc.data import engines
from vc.data.manifest import write_manifest
from vc.data.readers import choose_test_speakers
from vc.data.sentences import SentenceGenerator
from vc.data.utterance import Segment, Utterance, alignment_to_json, parse_alignment
from vc.data.voices import VoiceSpec, voice_catalogue

SAMPLE_RATE = 16000
FORMAT_VERSION = 1
_BATCH = 8  # sentences per engine call: amortises festival's start-up, keeps progress smooth
_PEAK = 0.9  # every file is peak-normalised, so loudness carries no speaker identity
_MIN_SECONDS = 0.3


@dataclass(frozen=True)
class PlannedUtterance:
    utt_id: str
    voice: VoiceSpec
    text: str
    sentence_id: str
    parallel: bool
    split: str

    @property
    def relpath(self) -> str:
        return f"wavs/{self.voice.name}/{self.utt_id}.wav"


@dataclass
class BuildResult:
    manifest: Path
    rendered: int  # utterances synthesised by this run
    reused: int  # utterances already on disk and still valid
    failed: dict[str, str] = field(default_factory=dict)  # utt_id -> reason


def plan_corpus(voices: list[VoiceSpec], sentences: int, seed: int, test_fraction: float,
                parallel_fraction: float) -> list[PlannedUtterance]:
    """Which voice says what. Parallel sentences first, then each voice's own, in voice order."""
    if sentences < 1:
        raise VoicelabError(f"--sentences must be at least 1, got {sentences}")
    if not 0.0 <= parallel_fraction <= 1.0:
        raise VoicelabError(f"parallel fraction must be within [0, 1], got {parallel_fraction}")
    n_parallel = min(sentences, max(1, round(parallel_fraction * sentences))) if parallel_fraction > 0 else 0
    generator = SentenceGenerator(seed)
    shared = generator.take(n_parallel)
    test = set(choose_test_speakers([v.name for v in voices], test_fraction, seed)) if len(voices) > 1 else set()
    plan, next_own = [], 1
    for voice in voices:
        split = "test" if voice.name in test else "train"
        for j, text in enumerate(shared, 1):
            sid = f"par{j:04d}"
            plan.append(PlannedUtterance(f"{voice.name}_{sid}", voice, text, sid, True, split))
        for text in generator.take(sentences - n_parallel):
            sid = f"sen{next_own:05d}"
            next_own += 1
            plan.append(PlannedUtterance(f"{voice.name}_{sid}", voice, text, sid, False, split))
    return plan


def build_corpus(out: str | os.PathLike, voices: int = 30, sentences: int = 300, seed: int = 0,
                 test_fraction: float = 0.2, parallel_fraction: float = 0.2, jobs: int | None = None,
                 engine_names: list[str] | None = None, progress: bool = True) -> BuildResult:
    """Render `voices` synthetic speakers x `sentences` sentences into `out` (see module doc).

    Args:
        engine_names: restrict to these engines ("flite", "festival", "espeak"); default all present.
        jobs: parallel workers (engines are single-threaded); default min(2, CPU count).
    """
    out = Path(out)
    catalogue = _usable_catalogue(seed, engine_names)
    if voices < 1 or voices > len(catalogue):
        raise VoicelabError(f"--voices must be between 1 and {len(catalogue)} on this machine (got {voices});"
                            " installing more engines adds voices")
    chosen = catalogue[:voices]
    plan = plan_corpus(chosen, sentences, seed, test_fraction, parallel_fraction)
    (out / "wavs").mkdir(parents=True, exist_ok=True)

    pending = [item for item in plan if _load_valid(out, item) is None]
    failed = _render_all(out, pending, jobs or min(2, os.cpu_count() or 1), progress)
    if failed:
        warnings.warn(f"{len(failed)} utterances failed and are left out of the manifest, e.g. "
                      + "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3]), stacklevel=2)

    utterances = []
    for item in plan:
        record = _load_valid(out, item)
        if record is not None:
            utterances.append(_utterance_of(out, item, record))
    manifest = write_manifest(utterances, out / "manifest.jsonl")
    splits = {item.voice.name: item.split for item in plan}
    _write_json(out / "corpus.json", {
        "format": FORMAT_VERSION, "built_by": "python -m vc.data build-corpus", "seed": seed,
        "voices": voices, "sentences": sentences, "test_fraction": test_fraction,
        "parallel_fraction": parallel_fraction, "sample_rate": SAMPLE_RATE,
        "utterances": len(utterances), "engine_versions": {e: engines.version_of(e) for e in sorted({v.engine for v in chosen})},
        "speakers": [dict(v.as_dict(), split=splits[v.name]) for v in chosen],
    })
    return BuildResult(manifest, rendered=len(pending) - len(failed), reused=len(plan) - len(pending), failed=failed)


def _usable_catalogue(seed: int, engine_names: list[str] | None) -> list[VoiceSpec]:
    unknown = set(engine_names or []) - set(engines.ENGINES)
    if unknown:
        raise VoicelabError(f"unknown engine(s) {sorted(unknown)}; choose from {list(engines.ENGINES)}")
    available = engines.available_voices()
    wanted = engine_names or list(engines.ENGINES)
    for engine in wanted:
        if not available.get(engine):
            warnings.warn(f"speech engine {engine} is not installed; its voices are skipped"
                          f" (Debian packages: {engines.DEBIAN_PACKAGES})", stacklevel=3)
    if "espeak" in wanted and available.get("espeak") and not engines.espeak_has_alignment():
        warnings.warn("libespeak-ng could not be loaded; espeak-ng voices get no phone alignment", stacklevel=3)
    available = {e: v for e, v in available.items() if e in wanted}
    catalogue = voice_catalogue(seed, available)
    if not catalogue:
        raise VoicelabError(f"no speech engine found (looked for {', '.join(wanted)}); on Debian/Ubuntu install:"
                            f" apt-get install {engines.DEBIAN_PACKAGES}")
    if any(v.has_effects for v in catalogue) and not _which("sox"):
        warnings.warn("sox is not installed; pitch-shifted and tempo variants are skipped (apt-get install sox)", stacklevel=3)
        catalogue = [v for v in catalogue if not v.has_effects]
    return catalogue


def _render_all(out: Path, pending: list[PlannedUtterance], jobs: int, progress: bool) -> dict[str, str]:
    from tqdm import tqdm

    by_voice: dict[str, list[PlannedUtterance]] = {}
    for item in pending:
        by_voice.setdefault(item.voice.name, []).append(item)
    # Round-robin over voices so both workers get a mix of engines at any moment.
    chunks = [[items[i:i + _BATCH] for i in range(0, len(items), _BATCH)] for items in by_voice.values()]
    batches = [batch for row in _interleave(chunks) for batch in row]
    failed: dict[str, str] = {}
    with tqdm(total=len(pending), unit="utt", desc="rendering", disable=not progress or not pending) as bar:
        if jobs <= 1 or len(batches) <= 1:
            for batch in batches:
                failed.update(render_batch(str(out), batch))
                bar.update(len(batch))
        else:
            # spawn, not fork: the caller may hold threads (torch, tqdm) that fork would copy broken.
            with futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                running = {pool.submit(render_batch, str(out), batch): batch for batch in batches}
                for done in futures.as_completed(running):
                    failed.update(done.result())
                    bar.update(len(running[done]))
    return failed


def _interleave(chunks: list[list]) -> list[list]:
    rows = []
    for i in range(max((len(c) for c in chunks), default=0)):
        rows.append([c[i] for c in chunks if i < len(c)])
    return rows


def render_batch(out: str, batch: list[PlannedUtterance]) -> dict[str, str]:
    """Render one voice's batch and write wav + sidecar for each; returns {utt_id: error}."""
    voice = batch[0].voice
    texts = [item.text for item in batch]
    try:
        if voice.engine == "espeak":
            results = engines.render_espeak(voice.voice, texts, voice.engine_rate, voice.engine_pitch)
        else:
            results = engines.RENDERERS[voice.engine](voice.voice, texts, f0_scale=voice.f0_scale)
    except VoicelabError as err:
        return {item.utt_id: str(err) for item in batch}
    failed = {}
    for item, rendered in zip(batch, results):
        try:
            audio, alignment = finish_audio(rendered, voice)
        except VoicelabError as err:
            failed[item.utt_id] = str(err)
            continue
        wav = Path(out) / item.relpath
        wav.parent.mkdir(parents=True, exist_ok=True)
        _write_wav(wav, audio)
        _write_json(wav.with_suffix(".json"), {
            "format": FORMAT_VERSION, "text": item.text, "voice": voice.as_dict(), "frames": len(audio),
            "alignment": alignment_to_json(alignment)})
    return failed


def finish_audio(rendered: engines.Rendered, voice: VoiceSpec) -> tuple[np.ndarray, list[Segment] | None]:
    """Engine output -> 16 kHz, the voice's effects applied, peak-normalised; alignment rescaled."""
    audio, rate = rendered.audio.astype(np.float32), rendered.sample_rate
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < 1e-3 or audio.size < _MIN_SECONDS * rate:
        raise engines.EngineError(f"{voice.engine} voice {voice.voice} gave silence or under {_MIN_SECONDS} s of audio")
    audio = audio * (0.5 / peak)  # headroom for the effects
    if voice.has_effects:
        audio = _sox(audio, rate, voice.sox_effects())
    elif rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="VHQ").astype(np.float32)
    audio = audio * (_PEAK / max(float(np.max(np.abs(audio))), 1e-9))
    duration = len(audio) / SAMPLE_RATE
    alignment = None
    if rendered.alignment is not None:
        scale = voice.time_scale
        alignment = [Segment(min(s.onset * scale, duration), min(s.offset * scale, duration), s.phone)
                     for s in rendered.alignment]
        alignment = [s for s in alignment if s.offset > s.onset]
    return audio, alignment


def _sox(audio: np.ndarray, rate: int, effects: list[str]) -> np.ndarray:
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]
    command = ["sox", "-V1", "-D", *raw, "-r", str(rate), "-", *raw, "-", *effects, "rate", "-v", str(SAMPLE_RATE)]
    proc = subprocess.run(command, input=audio.astype("<f4").tobytes(), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise engines.EngineError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def _load_valid(out: Path, item: PlannedUtterance) -> dict | None:
    """The sidecar record if the wav is on disk, complete, and was made from this text and voice."""
    wav = out / item.relpath
    sidecar = wav.with_suffix(".json")
    if not (wav.is_file() and sidecar.is_file()):
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        info = sf.info(str(wav))
    except (OSError, ValueError, RuntimeError):
        return None
    if (record.get("format") != FORMAT_VERSION or record.get("text") != item.text
            or record.get("voice") != item.voice.as_dict() or info.samplerate != SAMPLE_RATE
            or info.frames != record.get("frames") or info.frames == 0):
        return None
    return record


def _utterance_of(out: Path, item: PlannedUtterance, record: dict) -> Utterance:
    voice = item.voice
    extra = {
        "engine": voice.engine, "voice": voice.voice, "phoneset": "espeak" if voice.engine == "espeak" else "arpabet",
        "shift_cents": voice.shift_cents, "f0_scale": voice.f0_scale, "tempo": voice.tempo,
        "split": item.split, "sentence_id": item.sentence_id, "parallel": item.parallel,
        "duration": round(record["frames"] / SAMPLE_RATE, 4),
    }
    alignment = parse_alignment(record.get("alignment"), str(out / item.relpath))
    return Utterance(out / item.relpath, voice.name, item.text, alignment, "synthetic", extra)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.wav")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".part", delete=False, encoding="utf-8") as tmp:
        json.dump(data, tmp, indent=1, ensure_ascii=False)
    os.replace(tmp.name, path)


def _which(program: str) -> bool:
    from shutil import which

    return which(program) is not None
