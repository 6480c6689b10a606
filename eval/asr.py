"""Speech recognisers behind one interface, for intelligibility scores.

    recogniser = load_recogniser("pocketsphinx")
    text = recogniser.transcribe(audio)        # vc.audio.Audio, a path, or (rate, samples)

`pocketsphinx` is the offline default: its US-English acoustic and language models ship inside
the pip package, so it runs with no downloads. It is a weak recogniser (tens of percent WER on
clean read speech), so compare models with each other under it, never with published WERs.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from vc.audio import AudioSource, load_audio


class Recogniser(Protocol):
    name: str

    def transcribe(self, audio: AudioSource) -> str: ...


class PocketSphinx:
    """CMU PocketSphinx 5 with its bundled en-US model; 16 kHz mono input."""

    name = "pocketsphinx"
    sample_rate = 16000

    def __init__(self):
        from pocketsphinx import Decoder
        self.decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL")

    def transcribe(self, audio: AudioSource) -> str:
        clip = load_audio(audio).resample(self.sample_rate)
        pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


RECOGNISERS = {"pocketsphinx": PocketSphinx}


def load_recogniser(name: str) -> Recogniser:
    if name not in RECOGNISERS:
        raise ValueError(f"unknown ASR backend {name!r}; available: {', '.join(RECOGNISERS)}")
    return RECOGNISERS[name]()
