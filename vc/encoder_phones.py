"""Frame phone labels read from Whisper's encoder by a trained head, without a transcript.

    guide = EncoderPhones("whisper-phones")           # a name under checkpoints/, a folder or a Hub id
    found = guide.labels(audio, frames, frame_rate)   # PhoneLabels or None, as TranscriptPhones

The drop-in for `vc.transcript_phones.TranscriptPhones` where speed matters: the transcript path
runs Whisper's decoder token by token and then pocketsphinx's aligner, most of a conversion's
time; this runs Whisper's encoder once (the clip plus a second of silence) and the head of
`vc.models.whisper_phones`, whose per-frame phones need no alignment. What it gives up: the
decoder's language model, which fixes phones the acoustics leave unclear.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from .audio import Audio
from .data.phones import PHONE_INDEX, SILENCE
from .errors import CheckpointError
from .transcript_phones import CachedPhoneLabels, PhoneLabels

MIN_SPEECH_FRAMES = 3  # fewer phone frames than this: nothing was said


class EncoderPhones(CachedPhoneLabels):
    """Whisper's encoder plus a `WhisperPhoneHead`, loaded on first use (thread-safe).

    Args:
        head: the head's weights (a name under checkpoints/, a folder or a Hub repo id), or a
            loaded `WhisperPhoneHead`.
        threads: CPU threads for Whisper (default: torch's).
        cache_size: clips whose labels are kept (a preset voice is read once).

    `labels(audio, frames, frame_rate)` gives `PhoneLabels` (with no text) or None when the head
    hears no speech; `forget(audio)` drops a clip from the cache.
    """

    def __init__(self, head="whisper-phones", threads: int | None = None, cache_size: int = 16):
        self._head_spec, self.threads, self.cache_size = head, threads, cache_size
        self._head = head if isinstance(head, torch.nn.Module) else None
        self._recogniser = None
        self._lock = threading.RLock()
        self._cache: OrderedDict = OrderedDict()

    @property
    def name(self) -> str:
        spec = self._head_spec
        label = getattr(spec, "name_or_path", None) or (spec if isinstance(spec, str) else type(spec).__name__)
        return f"whisper-encoder:{label}"

    def load(self) -> "EncoderPhones":
        """Load the head and Whisper's encoder now (ModelNotFoundError when either is missing)."""
        with self._lock:
            if self._head is None:
                from .hub import load_model
                from .models.whisper_phones import WhisperPhoneHead
                head = load_model(self._head_spec)
                if not isinstance(head, WhisperPhoneHead):
                    raise CheckpointError(f"{self._head_spec!r} holds a {type(head).__name__}, not a Whisper "
                                          "phone head; give one `python -m training whisper-phones` wrote")
                self._head = head.eval()
            if self._recogniser is None:
                from .asr import Whisper
                self._recogniser = Whisper(self._head.whisper, threads=self.threads)
        return self

    def _labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        self.load()  # the lock guards loading only: CTranslate2's encoder and the head serve threads at once
        features = self._recogniser.encode(audio, self._head.tail_seconds)
        with torch.inference_mode():
            logits = self._head(torch.from_numpy(np.ascontiguousarray(features.T))[None].float())[0]
        labels = resample_logits(logits, self._head.frame_rate, frames, frame_rate).argmax(0)
        if int((labels != PHONE_INDEX[SILENCE]).sum()) < MIN_SPEECH_FRAMES:
            return None
        return PhoneLabels(labels.long(), "")


def phone_guide(spec: str):
    """The phone guide a spec names: "encoder" or "encoder:HEAD" the phones a trained head reads
    from Whisper's encoder (HEAD a name under checkpoints/, a folder or a Hub id; default
    whisper-phones), anything else a Whisper size or folder whose transcript is forced-aligned."""
    if spec == "encoder" or spec.startswith("encoder:"):
        return EncoderPhones(spec.partition(":")[2] or "whisper-phones")
    from .transcript_phones import TranscriptPhones
    return TranscriptPhones(spec)


def resample_logits(logits: torch.Tensor, rate: float, frames: int, frame_rate: float) -> torch.Tensor:
    """(n_phones, N) logits at `rate` per second -> (n_phones, frames) at `frame_rate`, each frame
    linearly interpolated at its centre time (frame t at t / rate seconds)."""
    position = torch.arange(frames, dtype=torch.float32) * (rate / frame_rate)
    position = position.clamp(max=logits.shape[-1] - 1)
    left = position.floor().long()
    right = (left + 1).clamp(max=logits.shape[-1] - 1)
    weight = position - left
    return logits[:, left] * (1 - weight) + logits[:, right] * weight


__all__ = ["EncoderPhones", "phone_guide", "resample_logits"]
