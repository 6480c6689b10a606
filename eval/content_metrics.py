"""Set-level content figures of a system: ZeroSpeech ABX and the bitrate of its units.

The items come from the phone alignments of the protocol's own corpora (the synthetic corpus
has them; the real-speech folders do not, and then these figures are left out with the reason
in the report). Only the protocol's speakers are used, at most `per_speaker` aligned
utterances each, so the figures describe the same unseen speakers as the trial metrics.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import defaultdict
from typing import Sequence

import numpy as np

from vc.audio import Audio, SpeechLimits, prepare_speech
from vc.data import read_corpora, read_corpus

from .abx import AbxItem, abx_error, items_from_alignments
from .bitrate import bitrate
from .protocol import Protocol
from .systems import System

MIN_ABX_RATE = 25.0  # frames per second below which content frames are held (see held_frames)
# level-normalised like model input, but not trimmed: the alignment times refer to the file
_UNTRIMMED = SpeechLimits(max_duration=None)


class AbxSet:
    """Items and audio for the content figures, or the reason there are none (`missing`)."""

    def __init__(self, items: list[AbxItem], audio: dict[str, Audio], missing: str = ""):
        self.items, self.audio, self.missing = items, audio, missing

    @classmethod
    def from_protocol(cls, protocol: Protocol, per_speaker: int = 8, sample_rate: int = 16000) -> "AbxSet":
        corpora = protocol.metadata.get("corpora") or []
        if not corpora:
            return cls([], {}, "the protocol names no corpus to take phone alignments from")
        try:
            # as the protocol builder read them: one corpus keeps its speaker ids, several are prefixed
            meta = protocol.metadata
            if meta.get("builder") == "build_real_speech_protocol":  # prefixed ids, in source order
                utterances = read_corpora(corpora, [*meta.get("held_out", []), *meta.get("not_held_out", [])])
            elif len(corpora) == 1:
                utterances = read_corpus(corpora[0])
            else:
                utterances = read_corpora(corpora, meta.get("corpus_names"))
        except Exception as err:  # noqa: BLE001 - a vanished corpus only loses these figures
            return cls([], {}, f"cannot read the protocol's corpora: {err}")
        utterances = _with_alignments(utterances, protocol.metadata.get("alignments"))
        wanted = {t.source_speaker for t in protocol} | {t.target_speaker for t in protocol}
        by_speaker = defaultdict(list)
        for utt in utterances:
            if utt.alignment and utt.speaker in wanted:
                by_speaker[utt.speaker].append(utt)
        if not by_speaker:
            return cls([], {}, "the protocol's corpora have no phone alignments for its speakers")
        chosen = [u for spk in sorted(by_speaker) for u in sorted(by_speaker[spk], key=lambda u: u.utt_id)[:per_speaker]]
        alignments = {u.utt_id: [(s.onset, s.offset, s.phone) for s in u.alignment] for u in chosen}
        items = items_from_alignments(alignments, {u.utt_id: u.speaker for u in chosen})
        audio = {u.utt_id: prepare_speech(u.path, sample_rate, _UNTRIMMED, trim=False) for u in chosen}
        return cls(items, audio)


def _with_alignments(utterances, manifest: str | None):
    """Utterances given the phone alignments of a manifest (by audio file) where they lack one:
    real held-out speech aligned by `python -m vc.data align` makes real-speech ABX possible."""
    if not manifest:
        return utterances
    try:
        aligned = {os.path.realpath(u.path): u.alignment for u in read_corpus(manifest) if u.alignment}
    except Exception:  # noqa: BLE001 - a vanished manifest only loses these figures
        return utterances
    return [u if u.alignment else dataclasses.replace(u, alignment=aligned.get(os.path.realpath(u.path)))
            for u in utterances]


def held_frames(features: dict[str, np.ndarray], frame_rate: float, minimum_rate: float = MIN_ABX_RATE
                ) -> tuple[dict[str, np.ndarray], float]:
    """Features repeated so each frame is held over the span it covers, at >= minimum_rate.

    ABX takes the frames centred inside a phone; at AutoVC's few codes per second most phones
    hold no frame centre and would be skipped. Holding frame i over its span (as the decoder
    does) keeps every centre inside frame i's span, so the time offset stays as it was.
    """
    if frame_rate >= minimum_rate:
        return features, frame_rate
    repeat = math.ceil(minimum_rate / frame_rate)
    return {u: np.repeat(f, repeat, axis=0) for u, f in features.items()}, frame_rate * repeat


def content_figures(system: System, abx_set: AbxSet, metrics: Sequence[str]) -> tuple[dict, list[str]]:
    """({"abx_within", "abx_across", "bitrate"} figures that apply, notes) of one system; each
    figure is {"value", "ci95": None, "n"}, n the items scored (ABX) or utterances (bitrate)."""
    wanted = [m for m in ("abx_within", "abx_across", "bitrate") if m in metrics]
    if not wanted or not abx_set.items:
        return {}, []
    content = system.content(abx_set.audio)
    if content is None:
        return {}, []
    features, rate = held_frames(content.features, content.frame_rate)
    notes = [] if rate == content.frame_rate else [
        f"{system.name}: ABX on content frames at {content.frame_rate:.1f}/s held to {rate:.1f}/s"]
    figures = {}
    for metric in wanted:
        if metric == "bitrate":
            if content.codes:
                durations = {u: abx_set.audio[u].duration for u in content.codes}
                figures[metric] = {"value": bitrate(content.codes, durations), "ci95": None,
                                   "n": len(content.codes)}
            continue
        try:
            result = abx_error(abx_set.items, features, rate, mode=metric.removeprefix("abx_"),
                               time_offset=content.time_offset)
        except ValueError as err:  # too few items for this mode (e.g. one speaker only for across)
            notes.append(f"{system.name}: no {metric}: {err}")
            continue
        figures[metric] = {"value": result["error"], "ci95": None, "n": result["n_items"]}
    return figures, notes
