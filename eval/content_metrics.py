"""Set-level content figures of a system: ZeroSpeech ABX and the bitrate of its units.

The items come from the phone alignments of the protocol's own corpora (the synthetic corpus
has them; the real-speech folders do not, and then these figures are left out with the reason
in the report). Only the protocol's speakers are used, at most `per_speaker` aligned
utterances each, so the figures describe the same unseen speakers as the trial metrics.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from vc.audio import Audio, SpeechLimits, prepare_speech
from vc.data import read_corpora, read_corpus

from .abx import AbxItem, abx_error, items_from_alignments
from .bitrate import bitrate
from .protocol import Protocol
from .systems import System

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
            utterances = read_corpus(corpora[0]) if len(corpora) == 1 else \
                read_corpora(corpora, protocol.metadata.get("corpus_names"))
        except Exception as err:  # noqa: BLE001 - a vanished corpus only loses these figures
            return cls([], {}, f"cannot read the protocol's corpora: {err}")
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


def content_figures(system: System, abx_set: AbxSet, metrics: Sequence[str]) -> dict:
    """{"abx_within", "abx_across", "bitrate"} figures (those that apply) of one system, each
    {"value", "ci95": None, "n"}; n is the items scored (ABX) or utterances (bitrate)."""
    wanted = [m for m in ("abx_within", "abx_across", "bitrate") if m in metrics]
    if not wanted or not abx_set.items:
        return {}
    content = system.content(abx_set.audio)
    if content is None:
        return {}
    figures = {}
    for metric in wanted:
        if metric == "bitrate":
            if content.codes:
                durations = {u: abx_set.audio[u].duration for u in content.codes}
                figures[metric] = {"value": bitrate(content.codes, durations), "ci95": None,
                                   "n": len(content.codes)}
            continue
        try:
            result = abx_error(abx_set.items, content.features, content.frame_rate,
                               mode=metric.removeprefix("abx_"), time_offset=content.time_offset)
        except ValueError:
            continue  # too few items for this mode (e.g. one speaker only for across)
        figures[metric] = {"value": result["error"], "ci95": None, "n": result["n_items"]}
    return figures
