"""More training speakers from real ones: every clip of a manifest re-rendered with its whole
spectrum shifted (pitch and formants together), each shift a new speaker.

    python -m vc.data shift-speakers --manifest data/aligned/librispeech-train.jsonl \\
        --out data/shifted/librispeech --cents -400 -200 200 400

A speaker-conditioned decoder generalises to unseen voices about as well as its training
voices cover the space of voices; the real corpora here have many speakers but one short clip
each. sox's `pitch` effect resamples and time-stretches back, so the clip keeps its duration
(its transcript and phone alignment stay valid) while its fundamental and its formants move by
the same ratio: +200 cents is roughly a voice with a 12 % shorter vocal tract and a higher
pitch, a different speaker to a speaker encoder. It is the real-speech counterpart of the
Piper corpus's shifted variants (`vc.data.piper_corpus`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from vc.errors import VoicelabError
from vc.data.manifest import read_manifest, write_manifest
from vc.data.sox_effects import pitch_effects, render_with_sox
from vc.data.utterance import Utterance

MAX_CENTS = 1200.0


def shifted_speaker(speaker: str, cents: float) -> str:
    """The new speaker's id: "19" shifted by +200 cents is "19+200c"."""
    return f"{speaker}{cents:+.0f}c"


def shift_clip(source: Path, out: Path, cents: float) -> None:
    """`source` with its spectrum moved by `cents` (duration kept), 16 kHz mono, written atomically."""
    render_with_sox(source, out, pitch_effects(cents))


def shift_speakers(manifest: Path, out: Path, cents: Sequence[float],
                   progress: Callable[[int, int], None] | None = None) -> tuple[Path, int, int]:
    """Every utterance of `manifest` shifted by each of `cents` into `out`/wavs, listed in
    `out`/manifest.jsonl with its text, alignment and a new speaker id per (speaker, shift).
    Clips already rendered are kept (resumable). Returns (manifest path, rendered, reused)."""
    cents = [float(c) for c in cents]
    bad = [c for c in cents if c == 0 or abs(c) > MAX_CENTS]
    if not cents or bad or len(set(cents)) != len(cents):
        raise VoicelabError(f"give distinct non-zero shifts within +-{MAX_CENTS:.0f} cents "
                            f"(e.g. --cents -400 -200 200 400); got {cents}")
    utterances = read_manifest(manifest)
    rows: list[Utterance] = []
    rendered = reused = 0
    for number, utt in enumerate(utterances):
        for shift in cents:
            speaker = shifted_speaker(utt.speaker, shift)
            path = out / "wavs" / speaker / f"{utt.path.stem}{shift:+.0f}c.wav"
            if path.is_file():
                reused += 1
            else:
                shift_clip(utt.path, path, shift)
                rendered += 1
            rows.append(replace(utt, path=path, speaker=speaker,
                                extra={**utt.extra, "shift_cents": shift, "shifted_from": utt.speaker}))
        if progress:
            progress(number + 1, len(utterances))
    return write_manifest(rows, out / "manifest.jsonl"), rendered, reused


__all__ = ["shift_speakers", "shift_clip", "shifted_speaker"]
