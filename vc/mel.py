"""Log-mel spectrograms in torch, with settings that travel inside every model's config.

The filterbank is computed here (Slaney or HTK mel scale, Slaney area normalisation) rather
than taken from librosa, so feature extraction runs on any torch device with no librosa at
run time; `tests/test_mel.py` checks it against librosa.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

COMPRESSIONS = ("log", "log10", "db", "none")


@dataclass(frozen=True)
class MelConfig:
    """Every setting that decides what a mel frame means.

    Args:
        sample_rate: audio rate in Hz that the frames are computed at.
        n_fft: FFT size in samples.
        hop_length: samples between frames.
        win_length: analysis window in samples (None: n_fft).
        window: "hann" or "hamming".
        n_mels: number of mel bands.
        fmin, fmax: band edges in Hz (fmax None: sample_rate / 2).
        power: 1 for magnitude, 2 for power spectra.
        center: pad the signal so frame t is centred on sample t * hop_length.
        pad_mode: padding used when centring ("reflect" or "constant").
        mel_scale: "slaney" (librosa's default) or "htk".
        mel_norm: "slaney" (area-normalised triangles) or None.
        compression: "log" (natural), "log10", "db" (AutoVC-style dB scaled to [0, 1]) or "none".
        log_floor: values are clamped to at least this before the logarithm.
        db_min, db_ref: for "db": output = clip((20 log10(x) - db_ref - db_min) / -db_min, 0, 1).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0
    power: float = 1.0
    center: bool = True
    pad_mode: str = "reflect"
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    compression: str = "log"
    log_floor: float = 1e-5
    db_min: float = -100.0
    db_ref: float = 20.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if self.hop_length <= 0 or self.n_fft <= 0:
            problems.append("n_fft and hop_length must be positive")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length {self.win_length} must be in 1..n_fft ({self.n_fft})")
        if self.window not in ("hann", "hamming"):
            problems.append(f"window must be 'hann' or 'hamming', got {self.window!r}")
        if self.mel_scale not in ("slaney", "htk"):
            problems.append(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.mel_norm not in ("slaney", None):
            problems.append(f"mel_norm must be 'slaney' or None, got {self.mel_norm!r}")
        if self.compression not in COMPRESSIONS:
            problems.append(f"compression must be one of {COMPRESSIONS}, got {self.compression!r}")
        if self.max_frequency > self.sample_rate / 2 or self.fmin >= self.max_frequency:
            problems.append(
                f"need 0 <= fmin < fmax <= sample_rate/2; got fmin={self.fmin}, "
                f"fmax={self.fmax}, sample_rate={self.sample_rate}")
        if problems:
            raise ValueError("invalid MelConfig: " + "; ".join(problems))

    @property
    def max_frequency(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: "MelConfig | Mapping[str, Any]") -> "MelConfig":
        """Build from a dict (as stored in config.json); unknown keys are an error."""
        if isinstance(value, MelConfig):
            return value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown mel settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**value)

    def mismatches(self, other: "MelConfig") -> list[str]:
        """Names and values of the settings where two configs differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


def hz_to_mel(hz: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_mel + torch.log(torch.clamp(hz, min=min_log_hz) / min_log_hz) / logstep
    return torch.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mel: torch.Tensor, scale: str = "slaney") -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = mel * f_sp
    log = min_log_hz * torch.exp(logstep * (mel - min_log_mel))
    return torch.where(mel >= min_log_mel, log, linear)


def mel_filterbank(config: MelConfig) -> torch.Tensor:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), float32."""
    n_freqs = config.n_fft // 2 + 1
    fft_freqs = torch.linspace(0, config.sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = torch.linspace(
        float(hz_to_mel(torch.tensor(float(config.fmin), dtype=torch.float64), config.mel_scale)),
        float(hz_to_mel(torch.tensor(config.max_frequency, dtype=torch.float64), config.mel_scale)),
        config.n_mels + 2, dtype=torch.float64)
    edges_hz = mel_to_hz(edges, config.mel_scale)
    widths = torch.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if config.mel_norm == "slaney":
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.to(torch.float32)


def _window(config: MelConfig) -> torch.Tensor:
    length = config.win_length or config.n_fft
    make = torch.hann_window if config.window == "hann" else torch.hamming_window
    return make(length, periodic=True, dtype=torch.float32)


class MelSpectrogram(nn.Module):
    """Waveform (B, T) or (T,) -> mel frames (B, n_mels, frames) or (n_mels, frames)."""

    def __init__(self, config: MelConfig | Mapping[str, Any] | None = None):
        super().__init__()
        self.config = MelConfig.from_dict(config) if config is not None else MelConfig()
        # Derived constants, not learned and not saved with any model's weights.
        self.register_buffer("window", _window(self.config), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(self.config), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        c = self.config
        if c.center:
            return num_samples // c.hop_length + 1
        return max(0, (num_samples - c.n_fft) // c.hop_length + 1)

    def spectrogram(self, wav: torch.Tensor) -> torch.Tensor:
        """Magnitude (power `config.power`) STFT, shape (B, n_fft//2+1, frames)."""
        c = self.config
        stft = torch.stft(
            wav.to(self.window.dtype), n_fft=c.n_fft, hop_length=c.hop_length,
            win_length=c.win_length or c.n_fft, window=self.window, center=c.center,
            pad_mode=c.pad_mode, return_complex=True)
        magnitude = stft.abs()
        return magnitude if c.power == 1.0 else magnitude.pow(c.power)

    def compress(self, mel: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.compression == "none":
            return mel
        floored = torch.clamp(mel, min=c.log_floor)
        if c.compression == "log":
            return torch.log(floored)
        if c.compression == "log10":
            return torch.log10(floored)
        decibels = 20.0 * torch.log10(floored) - c.db_ref
        return torch.clamp((decibels - c.db_min) / -c.db_min, 0.0, 1.0)

    def decompress(self, mel: torch.Tensor) -> torch.Tensor:
        """Inverse of `compress`: back to linear mel amplitudes (power `config.power`)."""
        c = self.config
        if c.compression == "none":
            return mel
        if c.compression == "log":
            return torch.exp(mel)
        if c.compression == "log10":
            return torch.pow(10.0, mel)
        decibels = mel * -c.db_min + c.db_min + c.db_ref
        return torch.pow(10.0, decibels / 20.0)

    #: frames computed per STFT call: long inputs go in chunks of this many frames, so the
    #: complex spectrogram of a 10-minute clip (~150 MB) never exists at once.
    chunk_frames: int = 4096

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav.unsqueeze(0)
        if self.config.center and self.num_frames(wav.shape[-1]) > self.chunk_frames:
            mel = self._chunked(wav)
        else:
            mel = self.compress(torch.matmul(self.filterbank, self.spectrogram(wav)))
        return mel.squeeze(0) if squeeze else mel

    def _chunked(self, wav: torch.Tensor) -> torch.Tensor:
        """The same frames as one centred STFT: the signal is padded once as torch.stft pads
        it, then each run of frames is an uncentred STFT of the samples under it."""
        c = self.config
        half = c.n_fft // 2
        padded = F.pad(wav.to(self.window.dtype)[:, None], (half, half), mode=c.pad_mode)[:, 0]
        total = self.num_frames(wav.shape[-1])
        parts = []
        for first in range(0, total, self.chunk_frames):
            last = min(total, first + self.chunk_frames)
            segment = padded[:, first * c.hop_length:(last - 1) * c.hop_length + c.n_fft]
            stft = torch.stft(segment, n_fft=c.n_fft, hop_length=c.hop_length,
                              win_length=c.win_length or c.n_fft, window=self.window, center=False,
                              return_complex=True)
            magnitude = stft.abs() if c.power == 1.0 else stft.abs().pow(c.power)
            parts.append(self.compress(torch.matmul(self.filterbank, magnitude)))
        return torch.cat(parts, dim=-1)
