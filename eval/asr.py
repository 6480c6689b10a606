"""Speech recognisers behind one interface, for intelligibility scores.

    recogniser = load_recogniser("pocketsphinx")
    text = recogniser.transcribe(audio)        # vc.audio.Audio, a path, or (rate, samples)

`pocketsphinx` is the offline default: its US-English acoustic and language models ship inside
the pip package, so it runs with no downloads. It is a weak recogniser (tens of percent WER on
clean read speech), so compare models with each other under it, never with published WERs.

`whisper` (OpenAI Whisper through Hugging Face `transformers`) is far stronger, but needs its
weights: `load_recogniser("whisper")` is openai/whisper-small, `load_recogniser("whisper:ID")`
any Hub id, `load_recogniser("whisper:/path/to/folder")` a folder saved by `save_pretrained`.
A Hub id is fetched into (or, offline or with HF_HUB_OFFLINE=1, read from) the local Hugging Face
cache, like voicelab's own models; with no weights to be had it raises ModelNotFoundError.
"""
from __future__ import annotations

import os
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
    """Whisper via `transformers`, from a Hub id (or its cached copy) or a local folder; 16 kHz.

    Audio longer than one window (30 s, the feature extractor's `chunk_length`) is cut into
    consecutive 30 s windows, each decoded on its own, and the texts joined with spaces; a word
    that straddles a window edge may be lost or doubled. `language` forces the transcription
    language ("en"; None lets Whisper detect it); English-only checkpoints (`*.en`) ignore it.
    `max_new_tokens` caps the tokens decoded per window (None: the model's default).
    """

    name = "whisper"
    sample_rate = 16000
    default_model = "openai/whisper-small"

    def __init__(self, model: str | os.PathLike = default_model, device: str = "cpu",
                 language: str | None = "en", max_new_tokens: int | None = None):
        try:
            import transformers  # noqa: F401
        except ImportError as error:
            raise VoicelabError(
                "the whisper ASR backend needs the `transformers` package: pip install "
                "transformers (or use load_recogniser('pocketsphinx'), which needs no weights)"
            ) from error
        import torch

        self.model_name = os.fspath(model)
        if self.model_name != self.default_model:
            self.name = f"whisper:{self.model_name}"
        self.device = torch.device(device)
        self.language = language
        self.max_new_tokens = max_new_tokens
        self.processor, self.model = _load_whisper(self.model_name)
        self.model.to(self.device).eval()
        self.window = int(self.processor.feature_extractor.n_samples)  # 30 s at 16 kHz
        self.multilingual = getattr(self.model.generation_config, "is_multilingual", True)

    def transcribe(self, audio: AudioSource) -> str:
        samples = load_audio(audio).resample(self.sample_rate).samples
        samples = np.asarray(samples, dtype=np.float32)
        texts = [self._transcribe_window(samples[start:start + self.window])
                 for start in range(0, max(len(samples), 1), self.window)]
        return " ".join(text for text in texts if text)

    def _transcribe_window(self, samples: np.ndarray) -> str:
        """Text of one window of at most 30 s of 16 kHz mono samples."""
        import torch

        features = self.processor.feature_extractor(
            samples, sampling_rate=self.sample_rate, return_tensors="pt").input_features
        options = {}
        if self.multilingual and self.language is not None:
            options.update(language=self.language, task="transcribe")
        if self.max_new_tokens is not None:
            options["max_new_tokens"] = self.max_new_tokens
        with torch.inference_mode():
            ids = self.model.generate(
                features.to(self.device, self.model.dtype), **options)
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


# What a Whisper repo needs downloaded: configs, tokenizer and safetensors weights (not the
# TensorFlow, Flax or pickled PyTorch copies some repos also hold).
WHISPER_FILES = ("*.json", "*.txt", "model.safetensors", "model-*.safetensors")


def _load_whisper(model: str):
    """(WhisperProcessor, WhisperForConditionalGeneration) from a folder or a Hub id."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from vc.hub import resolve_model_dir

    try:
        # a folder as given, then checkpoints/<model>, then the HF cache / Hub (cache only
        # when HF_HUB_OFFLINE=1); one snapshot_download, which fails fast with no network
        folder = resolve_model_dir(model, files=WHISPER_FILES)
    except ModelNotFoundError as error:
        raise ModelNotFoundError(
            f"{error} Whisper needs its weights: download them once on a machine with network "
            "(load_recogniser('whisper:HUB_ID') with HF_HUB_OFFLINE unset fills the Hugging "
            "Face cache; copy the cache or a save_pretrained folder here), pass a local folder "
            "as 'whisper:/path/to/folder', or use the 'pocketsphinx' backend, which needs no "
            "downloads.") from error
    try:
        processor = WhisperProcessor.from_pretrained(folder, local_files_only=True)
        network = WhisperForConditionalGeneration.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"cannot load Whisper from folder {str(folder)!r} ({type(error).__name__}: "
            f"{_first_line(error)}); it needs what WhisperProcessor and "
            "WhisperForConditionalGeneration.save_pretrained write (config.json, "
            "model.safetensors, the feature extractor and tokenizer files)") from error
    return processor, network


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


RECOGNISERS = {"pocketsphinx": PocketSphinx, "whisper": Whisper}


def load_recogniser(name: str, **options) -> Recogniser:
    """The recogniser `name`: "pocketsphinx", "whisper" or "whisper:HUB_ID_OR_FOLDER".

    `options` go to the backend's constructor (e.g. device="cuda", max_new_tokens=64).
    """
    backend, colon, model = name.partition(":")
    if backend not in RECOGNISERS or (colon and backend != "whisper"):
        raise ValueError(f"unknown ASR backend {name!r}; available: {', '.join(RECOGNISERS)} "
                         "(whisper also as 'whisper:HUB_ID' or 'whisper:/path/to/folder')")
    if colon:
        if not model:
            raise ValueError(f"{name!r} names no Whisper model; write 'whisper:HUB_ID_OR_FOLDER'")
        options["model"] = model
    return RECOGNISERS[backend](**options)
