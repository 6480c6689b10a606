"""Frame phone labels of speech from what it says: Whisper transcribes the clip, pocketsphinx's
forced aligner places the transcript's phones in time.

    guide = TranscriptPhones()                        # Whisper base, greedy; loaded on first use
    found = guide.labels(audio, frames, frame_rate)   # PhoneLabels or None
    found.labels                                      # (frames,) indices of vc.data.phones.PHONES

Why the phonetic converter takes them: its own recogniser (the content encoder) labels only
57 % of the frames of unseen real speakers correctly, and the decoder turns those posteriors
into speech Whisper reads at 64 % WER. Fed the phones of the forced-aligned transcript instead,
the same decoder is read at 10.5 % WER (16 held-out LibriSpeech and VCTK clips; 8.8 % with the
hand-checked transcripts). Transcribing and aligning cost about 0.14 s per second of speech on
two threads for long clips; a clip under 25 s is encoded with 5 s of silence after it rather
than in Whisper's 30 s window (`tail_seconds`), so 5 s of speech costs about 0.4 s. A clip
Whisper hears nothing in, or whose transcript cannot be aligned, gives None and the converter
falls back to its own recogniser.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from .audio import Audio
from .data.align import AlignmentError, ForcedAligner, transcript_words
from .data.phones import frame_labels


@dataclass(frozen=True)
class PhoneLabels:
    """`labels` (frames,) phone indices of `vc.data.phones.PHONES` for `text`."""

    labels: torch.Tensor
    text: str


class CachedPhoneLabels:
    """The clip cache of a phone guide: `labels` remembers what `_labels` found for a clip (by its
    samples), `forget` drops it. Subclasses set `_cache`, `_lock` and `cache_size`."""

    def labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        """Phone labels for the `frames` mel frames (at `frame_rate`) of `audio`, or None when
        nothing could be read in it."""
        key = (*_clip_key(audio), frames, float(frame_rate))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found = self._labels(audio, frames, frame_rate)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def forget(self, audio: Audio) -> None:
        """Drop what the cache holds for `audio`, so its next labels are read again (a
        benchmark times the source's reading on every repeat)."""
        clip = _clip_key(audio)
        with self._lock:
            for key in [k for k in self._cache if k[:2] == clip]:
                del self._cache[key]

    def _labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        raise NotImplementedError


class TranscriptPhones(CachedPhoneLabels):
    """Phone labels from a Whisper transcript aligned by pocketsphinx (see the module).

    Args:
        whisper: a Whisper size or folder (`vc.asr.Whisper`), or a loaded recogniser with a
            `transcribe(audio) -> str` method.
        beam_size: Whisper's beams (1, greedy: as accurate here at two thirds of the time).
        threads: Whisper's CPU threads (None: torch's setting).
        tail_seconds: a clip shorter than Whisper's 30 s window is encoded with this much
            silence after it rather than padded to 30 s (`vc.asr.Whisper`): about 2.5x faster on
            5-10 s clips at no cost in words measured; None pads to 30 s. A recogniser given
            loaded keeps its own setting.
        cache_size: clips whose labels are remembered (by their samples), so a preset reference
            voice or a source compared across models is transcribed once.
    """

    def __init__(self, whisper="base", beam_size: int = 1, threads: int | None = None,
                 tail_seconds: float | None = 5.0, cache_size: int = 64):
        self._whisper_spec, self.beam_size, self.threads = whisper, beam_size, threads
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, PhoneLabels | None] = OrderedDict()
        self._recogniser = whisper if hasattr(whisper, "transcribe") else None
        # a recogniser given loaded keeps its own window
        self.tail_seconds = tail_seconds if self._recogniser is None else getattr(whisper, "tail_seconds", None)
        self._aligner: ForcedAligner | None = None
        self._lock = threading.Lock()  # pocketsphinx's decoder is not thread-safe

    @property
    def name(self) -> str:
        spec = self._whisper_spec
        return getattr(spec, "name", None) or f"whisper-{spec}"

    def load(self) -> "TranscriptPhones":
        """Load Whisper and the aligner now (raises ModelNotFoundError when Whisper's weights
        are missing) rather than on the first clip."""
        with self._lock:
            if self._recogniser is None:
                from .asr import Whisper
                self._recogniser = Whisper(self._whisper_spec, beam_size=self.beam_size, threads=self.threads,
                                           tail_seconds=self.tail_seconds)
            if self._aligner is None:
                self._aligner = ForcedAligner()
        return self

    def transcribe(self, audio: Audio) -> str:
        self.load()
        with self._lock:
            return self._recogniser.transcribe(audio)

    def _labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        return self.aligned(audio, self.transcribe(audio), frames, frame_rate)

    def aligned(self, audio: Audio, text: str, frames: int, frame_rate: float) -> PhoneLabels | None:
        """`text`'s phones placed in the frames of `audio` by the aligner, or None when it has no
        words or cannot be aligned."""
        if not transcript_words(text):
            return None
        self.load()
        with self._lock:
            try:
                segments = self._aligner.align(audio, text)
            except AlignmentError:
                return None
        return PhoneLabels(torch.tensor(frame_labels(segments, frames, frame_rate), dtype=torch.long), text)


def _clip_key(audio: Audio) -> tuple[str, int]:
    """What identifies a clip in the transcript cache: its samples' digest and rate."""
    return hashlib.sha1(audio.samples.tobytes()).hexdigest(), audio.sample_rate


__all__ = ["CachedPhoneLabels", "PhoneLabels", "TranscriptPhones"]
