"""Frame phone labels read from Whisper's encoder by a trained head, without a transcript.

    guide = EncoderPhones("whisper-phones")           # a name under checkpoints/, a folder or a Hub id
    found = guide.labels(audio, frames, frame_rate)   # PhoneLabels or None, as TranscriptPhones
    guide = HybridPhones("base", "whisper-phones")    # the head, leaning toward the transcript

The drop-in for `vc.transcript_phones.TranscriptPhones` where speed matters: the transcript path
runs Whisper's decoder token by token and then pocketsphinx's aligner, most of a conversion's
time; this runs Whisper's encoder once (the clip plus a second of silence) and the head of
`vc.models.whisper_phones`, whose per-frame phones need no alignment. What it gives up: the
decoder's language model, which fixes phones the acoustics leave unclear.

`HybridPhones` takes both: Whisper transcribes the clip and pocketsphinx aligns the transcript as
`TranscriptPhones` does, and the head reads the same encoder output with the aligned phones as a
hint (`WhisperPhoneHead.read`). Where Whisper mishears (synthetic voices, unusual accents) the
transcript's phones are wrong and the head, hearing otherwise, overrules them; where the head is
unsure the transcript decides; and the head places the phone boundaries. On the head's held-out
speakers, against their alignments: frame accuracy 0.859 (transcript 0.831, head 0.831) and
phone error rate 5.0 % (transcript 6.1 %, head 9.2 %); on the synthetic voices among them,
where Whisper mishears, 7.3 % against the transcript's 11.1 %. The encoder runs once for both, so
it costs the transcript path's time plus the head's (~0.02 s for 5 s).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from .audio import Audio
from .data.phones import PHONE_INDEX, SILENCE
from .errors import CheckpointError
from .transcript_phones import CachedPhoneLabels, PhoneLabels, TranscriptPhones

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

    @property
    def head(self):
        """The `WhisperPhoneHead` (loaded now if it was not; Whisper is not)."""
        with self._lock:
            self._load_head()
        return self._head

    def load(self) -> "EncoderPhones":
        """Load the head and Whisper's encoder now (ModelNotFoundError when either is missing)."""
        with self._lock:
            self._load_head()
            if self._recogniser is None:
                from .asr import Whisper
                self._recogniser = Whisper(self._head.whisper, threads=self.threads)
        return self

    def _load_head(self) -> None:
        if self._head is None:
            from .hub import load_model
            from .models.whisper_phones import WhisperPhoneHead
            head = load_model(self._head_spec)
            if not isinstance(head, WhisperPhoneHead):
                raise CheckpointError(f"{self._head_spec!r} holds a {type(head).__name__}, not a Whisper "
                                      "phone head; give one `python -m training whisper-phones` wrote")
            self._head = head.eval()

    def _labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        self.load()  # the lock guards loading only: CTranslate2's encoder and the head serve threads at once
        features = self._recogniser.encode(audio, self._head.tail_seconds)
        return _phone_labels(self._head.read(features), self._head.frame_rate, frames, frame_rate, "")


class HybridPhones(EncoderPhones):
    """The head's phones leaning toward the aligned transcript (see the module).

    Args:
        transcript: a `TranscriptPhones`, or the Whisper size or folder it transcribes with
            (its encoder must be the one the head reads).
        head: as for `EncoderPhones`.
        hint_weight: what the transcript's phone adds to the head's log-probability in each
            frame (0: the head alone; large: the transcript wherever it is aligned). 4 was best
            of 0.5-6 on the head's held-out speakers.
    """

    def __init__(self, transcript="base", head="whisper-phones", hint_weight: float = 4.0,
                 cache_size: int = 16):
        if not 0 <= hint_weight < float("inf"):
            raise ValueError(f"hint_weight must be a finite number at least 0, got {hint_weight!r}")
        self.transcript = transcript if isinstance(transcript, TranscriptPhones) else TranscriptPhones(transcript)
        super().__init__(head, self.transcript.threads, cache_size)
        self.hint_weight = float(hint_weight)

    @property
    def name(self) -> str:
        return f"{self.transcript.name}+{super().name}"

    def load(self) -> "HybridPhones":
        with self._lock:
            self._load_head()
            self.transcript.load()
            recogniser = self.transcript._recogniser
            if getattr(recogniser, "model_name", self._head.whisper) != self._head.whisper:
                raise CheckpointError(f"the head reads Whisper-{self._head.whisper}'s encoder, but the transcript "
                                      f"comes from {self.transcript.name}; give the same size to both")
            self._recogniser = recogniser
        return self

    def _labels(self, audio: Audio, frames: int, frame_rate: float) -> PhoneLabels | None:
        self.load()
        with self.transcript._lock:  # as TranscriptPhones.transcribe: one Whisper call at a time
            text, features = self._recogniser.transcribe_and_encode(audio)
        found = self.transcript.aligned(audio, text, len(features), self._head.frame_rate)
        hint = None if found is None else found.labels.numpy()
        path = self._head.read(features, hint, self.hint_weight)
        return _phone_labels(path, self._head.frame_rate, frames, frame_rate, text)


def _phone_labels(path: np.ndarray, rate: float, frames: int, frame_rate: float, text: str) -> PhoneLabels | None:
    """A head's phone path at `rate` as PhoneLabels of `frames` frames at `frame_rate`, or None
    when it holds (almost) no speech."""
    labels = resample_labels(torch.from_numpy(path), rate, frames, frame_rate)
    if int((labels != PHONE_INDEX[SILENCE]).sum()) < MIN_SPEECH_FRAMES:
        return None
    return PhoneLabels(labels.long(), text)


def phone_guide(spec: str, transcript_for=TranscriptPhones):
    """The phone guide a spec names: "encoder" or "encoder:HEAD" the phones a trained head reads
    from Whisper's encoder (HEAD a name under checkpoints/, a folder or a Hub id; default
    whisper-phones); "SIZE+encoder[:HEAD]" that head leaning toward Whisper-SIZE's aligned
    transcript (`HybridPhones`); anything else a Whisper size or folder whose transcript is
    forced-aligned. `transcript_for(size)` gives the `TranscriptPhones` of a size (a registry
    passes its own, so a hybrid shares the transcriber of its size)."""
    whisper, plus, rest = spec.partition("+")
    if plus and (rest == "encoder" or rest.startswith("encoder:")):
        return HybridPhones(transcript_for(whisper), rest.partition(":")[2] or "whisper-phones")
    if spec == "encoder" or spec.startswith("encoder:"):
        return EncoderPhones(spec.partition(":")[2] or "whisper-phones")
    return transcript_for(spec)


def resample_labels(labels: torch.Tensor, rate: float, frames: int, frame_rate: float) -> torch.Tensor:
    """(N,) labels at `rate` per second -> (frames,) at `frame_rate`: each frame takes the label
    nearest its time (frame t at t / rate seconds), the last one past the end."""
    position = torch.round(torch.arange(frames, dtype=torch.float64) * (rate / frame_rate)).long()
    return labels[position.clamp(max=labels.shape[-1] - 1)]


__all__ = ["EncoderPhones", "HybridPhones", "phone_guide", "resample_labels"]
