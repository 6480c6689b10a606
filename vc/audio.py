"""Reading, checking and preparing speech.

`load_audio` decodes anything soundfile (or, failing that, librosa/audioread) can read and
mixes it to mono; `prepare_speech` is what every model calls before features: resample, refuse
garbage with a message that says what to do, trim leading/trailing silence and
loudness-normalise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .mel import MelConfig, MelSpectrogram  # noqa: F401  (re-exported: vc.audio.MelSpectrogram)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aiff", ".aif", ".au")


@dataclass
class Audio:
    """Mono float32 samples in [-1, 1] and their sample rate."""

    samples: np.ndarray
    sample_rate: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.samples = np.ascontiguousarray(self.samples, dtype=np.float32).reshape(-1)
        self.sample_rate = int(self.sample_rate)
        if self.sample_rate <= 0:
            raise AudioError(f"sample rate must be positive, got {self.sample_rate}")

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    def resample(self, sample_rate: int) -> "Audio":
        if sample_rate == self.sample_rate:
            return self
        samples = soxr.resample(self.samples, self.sample_rate, sample_rate, quality="HQ")
        return Audio(samples.astype(np.float32), sample_rate, self.name)

    def save(self, path: Union[str, Path]) -> Path:
        """Write to a file whose format follows the extension (16-bit PCM for .wav)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        subtype = "PCM_16" if path.suffix.lower() == ".wav" else None
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        sf.write(str(tmp), np.clip(self.samples, -1.0, 1.0), self.sample_rate,
                 subtype=subtype, format=_format_for(path))
        os.replace(tmp, path)
        return path

    def to_tensor(self):
        import torch
        return torch.from_numpy(self.samples.copy())


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "aiff": "AIFF"}
    if ext not in formats:
        raise AudioError(f"cannot save audio as '.{ext}'; use .wav, .flac, .ogg or .mp3")
    return formats[ext]


AudioSource = Union[str, Path, Audio, tuple, np.ndarray]


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM to float in [-1, 1]; float arrays pass through as float32."""
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    if samples.dtype.kind == "u":
        bits = samples.dtype.itemsize * 8
        return ((samples.astype(np.float64) - 2 ** (bits - 1)) / 2 ** (bits - 1)).astype(np.float32)
    if samples.dtype.kind == "i":
        bits = samples.dtype.itemsize * 8
        return (samples.astype(np.float64) / 2 ** (bits - 1)).astype(np.float32)
    raise AudioError(f"audio samples must be numbers, got dtype {samples.dtype}")


def _to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 1 or samples.size == 0:  # an empty file: load_audio says so, not "NaN"
        return samples.reshape(-1)
    if samples.ndim != 2:
        raise AudioError(f"{name}: expected 1-D (samples) or 2-D (samples x channels) audio, "
                         f"got shape {samples.shape}")
    # Channels are the short axis: (T, C) from soundfile/Gradio, (C, T) from librosa/torch.
    channel_axis = 1 if samples.shape[1] <= samples.shape[0] else 0
    return samples.mean(axis=channel_axis)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioError(f"no such file: '{path}'")
    if path.is_dir():
        raise AudioError(f"'{path}' is a folder; give an audio file (wav, flac, ogg, mp3)")
    if path.stat().st_size == 0:
        raise AudioError(f"'{path}' is an empty file (0 bytes); record or upload the clip again")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return samples, rate
    except Exception as sf_error:  # libsndfile could not read it: try audioread/ffmpeg
        try:
            import librosa
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples, rate = librosa.load(str(path), sr=None, mono=False)
            return np.atleast_2d(samples).T, int(rate)
        except Exception:
            raise AudioError(
                f"could not read '{path.name}' as audio ({sf_error}); "
                f"supported: {', '.join(AUDIO_EXTENSIONS)}") from None


def load_audio(source: AudioSource, sample_rate: int | None = None,
               source_rate: int | None = None) -> Audio:
    """Decode a file, array or `Audio` into mono float32 `Audio`, optionally resampled.

    Args:
        source: a path; an `Audio`; a `(rate, samples)` tuple as Gradio gives; or an array
            (1-D, or 2-D with a channel axis) together with `source_rate`.
        sample_rate: resample to this rate (None keeps the source rate).
        source_rate: the rate of an array `source`.
    """
    if isinstance(source, Audio):
        audio = Audio(source.samples, source.sample_rate, source.name)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        samples, rate = _decode(path)
        audio = Audio(_to_mono(samples, path.name), rate, path.name)
    elif isinstance(source, tuple) and len(source) == 2 and np.isscalar(source[0]):
        rate, samples = source
        audio = Audio(_to_mono(_to_float(np.asarray(samples)), "array"), int(rate), "array")
    elif isinstance(source, np.ndarray) or hasattr(source, "numpy"):
        if source_rate is None:
            raise AudioError("an array of samples needs its sample rate: pass source_rate=...")
        array = source.detach().cpu().numpy() if hasattr(source, "detach") else np.asarray(source)
        audio = Audio(_to_mono(_to_float(array), "array"), source_rate, "array")
    else:
        raise AudioError(f"cannot read audio from a {type(source).__name__}; "
                         "give a file path, an Audio, a (rate, samples) tuple or an array")
    label = audio.name or "audio"
    if audio.samples.size == 0:
        raise AudioError(f"{label} contains no samples; record or upload a longer clip")
    if not np.all(np.isfinite(audio.samples)):
        raise AudioError(f"{label} contains NaN or infinite samples; the file is damaged or "
                         "was written by a broken process")
    return audio.resample(sample_rate) if sample_rate else audio


@dataclass(frozen=True)
class SpeechLimits:
    """What counts as usable speech.

    Args:
        min_speech: seconds of non-silent audio required.
        max_duration: longest clip accepted, in seconds (None: no limit).
        silence_dbfs: a clip whose peak is below this is refused as silent.
        trim_db: frames this far below the loudest frame count as silence for trimming.
        target_dbfs: RMS level of the speech after normalisation (None: leave the level).
    """

    min_speech: float = 0.5
    max_duration: float | None = 600.0
    silence_dbfs: float = -60.0
    trim_db: float = 40.0
    target_dbfs: float | None = -23.0


def _frame_levels(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dB of consecutive frames (the last partial frame included)."""
    n = int(np.ceil(len(samples) / frame))
    padded = np.zeros(n * frame, dtype=np.float64)
    padded[: len(samples)] = samples
    rms = np.sqrt(np.mean(padded.reshape(n, frame) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def trim_silence(audio: Audio, top_db: float = 40.0, frame_seconds: float = 0.02) -> Audio:
    """Cut leading and trailing frames quieter than `top_db` below the loudest frame."""
    frame = max(1, int(frame_seconds * audio.sample_rate))
    levels = _frame_levels(audio.samples, frame)
    active = np.flatnonzero(levels > levels.max() - top_db)
    if active.size == 0:
        return audio
    start, stop = active[0] * frame, min(len(audio.samples), (active[-1] + 1) * frame)
    return Audio(audio.samples[start:stop], audio.sample_rate, audio.name)


def speech_seconds(audio: Audio, top_db: float = 40.0, frame_seconds: float = 0.02) -> float:
    """Seconds of frames within `top_db` of the loudest frame."""
    frame = max(1, int(frame_seconds * audio.sample_rate))
    levels = _frame_levels(audio.samples, frame)
    return float(np.sum(levels > levels.max() - top_db) * frame / audio.sample_rate)


def normalize_loudness(audio: Audio, target_dbfs: float = -23.0, top_db: float = 40.0) -> Audio:
    """Scale so the RMS of the speech frames is `target_dbfs`, never clipping."""
    frame = max(1, int(0.02 * audio.sample_rate))
    levels = _frame_levels(audio.samples, frame)
    active = levels > levels.max() - top_db
    power = np.mean(10 ** (levels[active] / 10))
    gain = 10 ** ((target_dbfs - 10 * np.log10(power)) / 20)
    peak = float(np.max(np.abs(audio.samples)))
    gain = min(gain, 0.99 / peak)
    return Audio(audio.samples * gain, audio.sample_rate, audio.name)


def prepare_speech(source: AudioSource, sample_rate: int, limits: SpeechLimits = SpeechLimits(),
                   *, trim: bool = True, normalize: bool = True,
                   source_rate: int | None = None) -> Audio:
    """Load a clip for a model: mono, `sample_rate`, checked, trimmed and level-normalised.

    Raises:
        AudioError: unreadable, empty, NaN, silent, too long, or too little speech; the message
            says which and what would work.
    """
    audio = load_audio(source, source_rate=source_rate)
    label = f"'{audio.name}'" if audio.name and audio.name != "array" else "the clip"
    if limits.max_duration is not None and audio.duration > limits.max_duration:
        raise AudioError(
            f"{label} is {audio.duration:.1f} s long; the longest accepted is "
            f"{limits.max_duration:.0f} s. Cut it shorter or raise the maximum duration.")
    peak = float(np.max(np.abs(audio.samples)))
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else float("-inf")
    if peak_dbfs < limits.silence_dbfs:
        raise AudioError(
            f"{label} is silent (peak {peak_dbfs:.0f} dBFS); check the microphone or pick "
            "a clip with speech in it.")
    audio = audio.resample(sample_rate)
    speech = speech_seconds(audio, limits.trim_db)
    if speech < limits.min_speech:
        raise AudioError(
            f"{label} has only {speech:.2f} s of speech; at least {limits.min_speech:.1f} s is "
            "needed. Use a longer clip.")
    if trim:
        audio = trim_silence(audio, limits.trim_db)
    if normalize and limits.target_dbfs is not None:
        audio = normalize_loudness(audio, limits.target_dbfs, limits.trim_db)
    return audio
