"""Reading, checking and preparing speech.

`load_audio` decodes anything libsndfile (or, for m4a/aac, PyAV) can read and mixes it to mono,
refusing a clip longer than `max_seconds` from its header, before decoding; `prepare_speech` is
what every model calls before features: resample, refuse garbage with a message that says what
to do (including clips in which voice-activity detection finds no speech), trim leading/trailing
silence and loudness-normalise.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .mel import MelConfig, MelSpectrogram  # noqa: F401  (re-exported: vc.audio.MelSpectrogram)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".au")
SAVE_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3", "aiff": "AIFF"}


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
        """Write to a file whose format follows the extension (16-bit PCM for .wav).

        Refuses audio with NaN or infinite samples (a damaged model makes them; written out
        they would play as full-scale noise) and says why a path cannot be written."""
        path = Path(path)
        bad = int(np.count_nonzero(~np.isfinite(self.samples)))
        if bad:
            raise AudioError(
                f"refusing to save {_quoted(self.name) or 'the audio'} to '{path.name}': {bad} of "
                f"{len(self.samples)} samples are NaN or infinite. The model or vocoder that made "
                "it is broken (damaged weights?); re-download or re-train it.")
        fmt = _format_for(path)
        check_output_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        subtype = "PCM_16" if path.suffix.lower() == ".wav" else None
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            sf.write(str(tmp), np.clip(self.samples, -1.0, 1.0), self.sample_rate,
                     subtype=subtype, format=fmt)
            os.replace(tmp, path)
        except (OSError, sf.LibsndfileError) as error:
            tmp.unlink(missing_ok=True)
            raise AudioError(f"could not write '{path}': {_reason(error)}") from None
        return path

    def to_tensor(self):
        import torch
        return torch.from_numpy(self.samples.copy())


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    known = ", ".join("." + e for e in SAVE_FORMATS)
    if not ext:
        raise AudioError(f"cannot save audio as '{path.name}': it has no extension; end the "
                         f"name with one of {known}")
    if ext not in SAVE_FORMATS:
        raise AudioError(f"cannot save audio as '.{ext}' ('{path.name}'); use one of {known}")
    return SAVE_FORMATS[ext]


def check_output_path(path: Union[str, Path]) -> Path:
    """Raise AudioError unless audio can be written to `path`: a known extension, not a
    folder, and the nearest existing parent a writable folder (probed with a temporary
    file, so read-only file systems are caught too). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"the output '{path}' is a folder; give a file name such as "
                         f"'{path / 'out.wav'}'")
    _format_for(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise AudioError(f"cannot write '{path}': '{parent}' is a file, not a folder; choose "
                         "another output path")
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".voicelab-write-check-"):
            pass
    except OSError as error:
        raise AudioError(f"cannot write '{path}': the folder '{parent}' is not writable "
                         f"({_reason(error)}); choose another output path") from None
    return path


def _reason(error: BaseException) -> str:
    """An OS/libsndfile/FFmpeg error without the full path it names (a server's temp path
    means nothing to the person who uploaded the file)."""
    for attribute in ("error_string", "strerror"):
        text = getattr(error, attribute, None)
        if isinstance(text, str) and text:
            return text.strip()
    return str(error).strip() or type(error).__name__


def _quoted(name: str) -> str:
    return f"'{name}'" if name and name != "array" else ""


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


def _mix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) by averaging the channels."""
    return block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)


def _check_not_cancelled(label: str, channels: int, channel_peak: float, mono_peak: float) -> None:
    """Channels that are each other's inverse (L = -R) mix to silence: say so, not 'silent'."""
    if channels > 1 and channel_peak > 10 ** (-60 / 20) and mono_peak < 1e-3 * channel_peak:
        raise AudioError(
            f"{label}: its {channels} channels cancel out when mixed to mono (one is the other "
            "with its polarity inverted, as from a mis-wired microphone or cable), which leaves "
            "silence. Keep a single channel (e.g. `sox in.wav out.wav remix 1`) and try again.")


def _to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 1 or samples.size == 0:  # an empty file: load_audio says so, not "NaN"
        return samples.reshape(-1)
    if samples.ndim != 2:
        raise AudioError(f"{name}: expected 1-D (samples) or 2-D (samples x channels) audio, "
                         f"got shape {samples.shape}")
    # Channels are the short axis: (T, C) from soundfile/Gradio, (C, T) from librosa/torch.
    if samples.shape[1] > samples.shape[0]:
        samples = samples.T
    mono = _mix(samples)
    _check_not_cancelled(_quoted(name) or "the clip", samples.shape[1],
                         float(np.max(np.abs(samples))), float(np.max(np.abs(mono))))
    return mono


def _too_long(label: str, seconds: float | None, limit: float) -> AudioError:
    length = f"is {seconds:.1f} s long" if seconds is not None else f"is over {limit:g} s long"
    return AudioError(f"{label} {length}; the longest accepted is {limit:g} s. Cut it shorter, or "
                      "raise the limit (--max-seconds in the CLI and the web demo, "
                      "SpeechLimits(max_duration=...) in Python).")


class _MonoDecoder:
    """Collects decoded blocks as mono, stopping once more than `limit` seconds came in, so
    a small file that decodes to hours (a decompression bomb) never fills memory."""

    def __init__(self, label: str, rate: int, channels: int, limit: float | None):
        self.label, self.rate, self.channels, self.limit = label, int(rate), int(channels), limit
        self.cap = None if limit is None else int(math.ceil(limit * rate)) + 1
        self.parts: list[np.ndarray] = []
        self.frames = 0
        self.channel_peak = self.mono_peak = 0.0

    def add(self, block: np.ndarray) -> None:
        """A (frames, channels) float32 block."""
        if block.size == 0:
            return
        mono = _mix(block)
        if self.channels > 1:
            self.channel_peak = max(self.channel_peak, float(np.max(np.abs(block))))
            self.mono_peak = max(self.mono_peak, float(np.max(np.abs(mono))))
        self.parts.append(np.array(mono, dtype=np.float32))
        self.frames += len(mono)
        if self.cap is not None and self.frames > self.cap:
            raise _too_long(self.label, None, self.limit)

    def result(self) -> np.ndarray:
        _check_not_cancelled(self.label, self.channels, self.channel_peak, self.mono_peak)
        if not self.parts:
            return np.zeros(0, dtype=np.float32)
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)


_BLOCK_FRAMES = 1 << 16
_UNKNOWN_FRAMES = 2 ** 62  # libsndfile reports SF_COUNT_MAX when the header does not say
# Containers PyAV (FFmpeg) may open, by extension; FFmpeg is never left to guess the format of
# an upload, since some of its demuxers (playlists, concat) would open other files.
_AV_FORMATS = {".m4a": "mov", ".mp4": "mov", ".aac": "aac", ".webm": "matroska",
               ".mka": "matroska", ".flac": "flac", ".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3",
               ".wav": "wav"}
# libsndfile major formats -> the FFmpeg demuxer for files whose length libsndfile cannot tell
_SF_TO_AV = {"FLAC": "flac", "OGG": "ogg", "MP3": "mp3", "WAV": "wav", "WAVEX": "wav"}


def _decode(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of an audio file, reading no more than
    `max_seconds` of it (a longer file is refused from its header where that tells)."""
    label = f"'{path.name}'"
    if not path.exists():
        raise AudioError(f"no such file: '{path}'")
    if path.is_dir():
        raise AudioError(f"{label} is a folder; give an audio file (wav, flac, ogg, mp3, m4a)")
    if path.stat().st_size == 0:
        raise AudioError(f"{label} is an empty file (0 bytes); record or upload the clip again")
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        fmt = _AV_FORMATS.get(path.suffix.lower(), "mov")  # m4a is what libsndfile lacks
        return _decode_with_av(path, fmt, max_seconds, sf_error)
    with handle:
        rate, channels, frames = handle.samplerate, handle.channels, handle.frames
        if not 0 <= frames < _UNKNOWN_FRAMES:  # e.g. a FLAC stream without a total
            fmt = _SF_TO_AV.get(handle.format)
            if fmt is None:
                raise AudioError(f"{label}: its header does not give its length, and voicelab "
                                 "cannot read that kind of file without it; convert it to WAV "
                                 "or FLAC")
        else:
            fmt = None
            if max_seconds is not None and frames / rate > max_seconds:
                raise _too_long(label, frames / rate, max_seconds)
            mono = _MonoDecoder(label, rate, channels, max_seconds)
            try:
                while True:
                    block = handle.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    mono.add(block)
            except (sf.LibsndfileError, RuntimeError) as error:
                raise AudioError(f"{label} is damaged: decoding stopped after "
                                 f"{mono.frames / rate:.2f} s ({_reason(error)}); export it "
                                 "again") from None
            return mono.result(), rate
    return _decode_with_av(path, fmt, max_seconds, None)


def _decode_with_av(path: Path, fmt: str, max_seconds: float | None,
                    sf_error: BaseException | None) -> tuple[np.ndarray, int]:
    """Decode with PyAV (FFmpeg's decoders) as the demuxer `fmt`, streaming, capped."""
    label = f"'{path.name}'"
    unreadable = AudioError(
        f"could not read {label} as audio ({_reason(sf_error) if sf_error else 'unreadable'}); "
        f"supported: {', '.join(AUDIO_EXTENSIONS)}")
    try:
        import av
    except ImportError:
        raise unreadable from None
    try:
        container = av.open(str(path), format=fmt, options={"protocol_whitelist": "file"})
    except (av.FFmpegError, ValueError, OSError):
        raise unreadable from None
    with container:
        if not container.streams.audio:
            raise AudioError(f"{label} holds no audio stream (a video or data file?); give an "
                             "audio file")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise unreadable
        seconds = None
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000  # AV_TIME_BASE
        if max_seconds is not None and seconds is not None and seconds > max_seconds:
            raise _too_long(label, seconds, max_seconds)
        mono = _MonoDecoder(label, rate, stream.codec_context.channels or 1, max_seconds)
        try:
            for frame in container.decode(stream):
                block = frame.to_ndarray()
                channels = len(frame.layout.channels)
                block = block.T if frame.format.is_planar else block.reshape(-1, channels)
                mono.add(_to_float(block))
        except AudioError:
            raise
        except (av.FFmpegError, ValueError) as error:
            if not mono.frames:
                raise unreadable from None
            raise AudioError(f"{label} is damaged: decoding stopped after "
                             f"{mono.frames / rate:.2f} s ({_reason(error)}); export it "
                             "again") from None
        return mono.result(), int(rate)


def load_audio(source: AudioSource, sample_rate: int | None = None,
               source_rate: int | None = None, *, max_seconds: float | None = None) -> Audio:
    """Decode a file, array or `Audio` into mono float32 `Audio`, optionally resampled.

    Args:
        source: a path; an `Audio`; a `(rate, samples)` tuple as Gradio gives; or an array
            (1-D, or 2-D with a channel axis) together with `source_rate`.
        sample_rate: resample to this rate (None keeps the source rate).
        source_rate: the rate of an array `source`.
        max_seconds: refuse anything longer. A file's length is read from its header before
            decoding, and decoding stops past it where the header does not say.
    """
    if isinstance(source, Audio):
        audio = Audio(source.samples, source.sample_rate, source.name)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        samples, rate = _decode(path, max_seconds)
        audio = Audio(samples, rate, path.name)
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
    label = _quoted(audio.name) or "the audio"
    if audio.samples.size == 0:
        raise AudioError(f"{label} contains no samples; record or upload a longer clip")
    if max_seconds is not None and audio.duration > max_seconds:
        raise _too_long(label, audio.duration, max_seconds)
    if not np.all(np.isfinite(audio.samples)):
        raise AudioError(f"{label} contains NaN or infinite samples; the file is damaged or "
                         "was written by a broken process")
    return audio.resample(sample_rate) if sample_rate else audio


@dataclass(frozen=True)
class SpeechLimits:
    """What counts as usable speech.

    Args:
        min_speech: seconds of speech (as `speech_seconds` finds it) required.
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


def sound_seconds(audio: Audio, top_db: float = 40.0, frame_seconds: float = 0.02) -> float:
    """Seconds of frames within `top_db` of the loudest frame (speech or not)."""
    frame = max(1, int(frame_seconds * audio.sample_rate))
    levels = _frame_levels(audio.samples, frame)
    return float(np.sum(levels > levels.max() - top_db) * frame / audio.sample_rate)


VAD_RATE = 16000
VAD_FRAME_SECONDS = 0.03
# Speech rises and falls syllable by syllable: within any second of it the louder frames are
# 10-30 dB above the quieter ones (10-90th percentile; real and synthetic corpora alike), while
# steady sounds stay within a few dB: white noise ~1 dB, pink noise ~4 dB, tones, hum and
# square waves ~0 dB.
MIN_SPEECH_SWING_DB = 6.0
_SWING_FRAMES = 16  # either side of a frame: about a second in all


def voice_activity(audio: Audio, top_db: float = 40.0) -> np.ndarray:
    """Per 30 ms frame, whether it holds speech.

    A frame counts when WebRTC's voice-activity detector (on a 16 kHz copy, DC removed and
    the level normalised, so a quiet clip is heard as well as a loud one) calls it speech, it
    is within `top_db` of the loudest frame, and the level around it swings by at least
    `MIN_SPEECH_SWING_DB` as speech does by syllable. The detector alone accepts loud
    broadband sound (white noise, a square wave, a tone); the swing refuses steady sounds.
    """
    import warnings
    with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import webrtcvad
    frame = int(VAD_RATE * VAD_FRAME_SECONDS)
    samples = audio.resample(VAD_RATE).samples
    n = len(samples) // frame
    if n == 0:
        return np.zeros(0, dtype=bool)
    frames = samples[: n * frame].reshape(n, frame) - np.float32(np.mean(samples, dtype=np.float64))
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    reference = float(np.percentile(rms, 95))
    if reference <= 0:
        return np.zeros(n, dtype=bool)
    levels = 20 * np.log10(np.maximum(rms, 1e-10))
    active = levels > levels.max() - top_db
    pcm = (np.clip(frames * (0.1 / reference), -1.0, 1.0) * 32767).astype(np.int16)
    detector = webrtcvad.Vad(1)
    voiced = np.fromiter((detector.is_speech(f.tobytes(), VAD_RATE) for f in pcm), bool, n)
    return voiced & active & (_level_swing(np.where(active, levels, np.nan)) >= MIN_SPEECH_SWING_DB)


def _level_swing(levels: np.ndarray) -> np.ndarray:
    """Per frame, the 90th minus the 10th percentile (nearest rank) of the non-NaN levels
    within `_SWING_FRAMES` either side."""
    width = 2 * _SWING_FRAMES + 1
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(levels, _SWING_FRAMES, constant_values=np.nan), width)
    ordered = np.sort(windows, axis=1)  # NaN sorts last
    count = np.sum(~np.isnan(windows), axis=1)
    rows = np.arange(len(levels))
    top = np.maximum(count - 1, 0)
    low = ordered[rows, np.round(0.1 * top).astype(int)]
    high = ordered[rows, np.round(0.9 * top).astype(int)]
    return np.where(count > 0, high - low, 0.0)


def speech_seconds(audio: Audio, top_db: float = 40.0) -> float:
    """Seconds of speech in `audio`, as `voice_activity` finds it."""
    return float(np.sum(voice_activity(audio, top_db)) * VAD_FRAME_SECONDS)


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
        AudioError: unreadable, empty, NaN, too long (refused from the header, before
            decoding), silent, or too little speech (noise, tones, hum and DC have none); the
            message says which and what would work.
    """
    audio = load_audio(source, source_rate=source_rate, max_seconds=limits.max_duration)
    label = _quoted(audio.name) or "the clip"
    peak = float(np.max(np.abs(audio.samples)))
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else float("-inf")
    if peak_dbfs < limits.silence_dbfs:
        raise AudioError(
            f"{label} is silent (peak {peak_dbfs:.0f} dBFS); check the microphone or pick "
            "a clip with speech in it.")
    offset = float(np.mean(audio.samples, dtype=np.float64))
    if float(np.max(np.abs(audio.samples - offset))) < 10 ** (limits.silence_dbfs / 20):
        raise AudioError(
            f"no speech found in {label}: it holds only a constant offset (DC, {offset:+.3f}) "
            "and no sound. Check the microphone or pick a clip with speech in it.")
    audio = audio.resample(sample_rate)
    speech = speech_seconds(audio, limits.trim_db)
    if speech < limits.min_speech:
        sound = sound_seconds(audio, limits.trim_db)
        if sound < limits.min_speech:
            raise AudioError(
                f"{label} has only {sound:.2f} s of sound; at least {limits.min_speech:g} s of "
                "speech is needed. Use a longer clip.")
        if speech < 0.2 * limits.min_speech:
            raise AudioError(
                f"no speech found in {label}: its {sound:.1f} s of sound stay at one level instead "
                "of rising and falling syllable by syllable, as steady noise, a tone, hum or a "
                "test signal do. Pick a clip of someone speaking.")
        raise AudioError(
            f"{label} has only {speech:.2f} s of speech (in {sound:.1f} s of sound); at least "
            f"{limits.min_speech:g} s is needed. Use a clip with more speech in it.")
    if trim:
        audio = trim_silence(audio, limits.trim_db)
    if normalize and limits.target_dbfs is not None:
        audio = normalize_loudness(audio, limits.target_dbfs, limits.trim_db)
    return audio
