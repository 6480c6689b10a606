"""A harmonic-plus-noise vocoder (DDSP, Engel et al., ICLR 2020) that reads its pitch from the mel.

A small network at the mel frame rate predicts, per frame, the fundamental frequency F0, a
spectral envelope for the harmonics and one for the noise. The waveform is then made by signal
processing: every harmonic of F0 at unit amplitude (their phase the running integral of F0, so
it is continuous from sample to sample), filtered frame by frame by the harmonic envelope, plus
white noise filtered by the noise envelope (a source-filter model; the filtering is a product of
short-time spectra, as in the neural homomorphic vocoder, Liu et al. 2020). Why: a vocoder that must learn phase (hifigan-fast's
inverse-STFT head) buzzes at the frame rate unless it trains for long against discriminators,
which a CPU cannot afford; here the phase is right by construction and a spectral loss suffices.

F0 is supervised (pYIN labels of the training audio) and, while training, the labels drive the
oscillators (teacher forcing) so the envelopes learn against the right harmonics; at inference
the predicted F0 does. The vocoder keeps the mel-only interface of every other vocoder.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..hub import HubModel, as_dataclass
from ..mel import MelConfig

LRELU_SLOPE = 0.1
NOISE_SEED = 0  # inference draws its noise from this seed: the same mel gives the same audio


def frames_to_samples(x: torch.Tensor, hop: int) -> torch.Tensor:
    """(..., T) frame values -> (..., T * hop) samples by linear interpolation, frame t sitting
    at sample t * hop (as a centred STFT frame does); the last frame is held to the end."""
    frames = x.shape[-1]
    position = torch.arange(frames * hop, device=x.device, dtype=torch.float32) / hop
    left = position.floor().long().clamp(max=frames - 1)
    right = (left + 1).clamp(max=frames - 1)
    weight = (position - left).to(x.dtype)
    return x[..., left] * (1 - weight) + x[..., right] * weight


class _Block(nn.Module):
    """Dilated convolution, leaky ReLU, 1x1 convolution, with a residual connection."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.dilated = weight_norm(nn.Conv1d(channels, channels, kernel, dilation=dilation,
                                             padding=dilation * (kernel - 1) // 2))
        self.pointwise = weight_norm(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dilated(F.leaky_relu(x, LRELU_SLOPE))
        return x + self.pointwise(F.leaky_relu(h, LRELU_SLOPE))


class HarmonicNoiseVocoder(HubModel):
    """Log-mel frames (B, n_mels, frames) -> waveform (B, frames * hop).

    Args:
        mel: the mel settings it was trained on.
        channels, kernel, dilations: the frame-rate network (one residual block per dilation).
        harmonics: at most this many harmonics of F0 (none at or above Nyquist).
        harmonic_fft, noise_fft: FFT sizes of the harmonic and noise filters (their hop is the
            mel hop): the envelopes have harmonic_fft // 2 + 1 and noise_fft // 2 + 1 bins.
        f0_min, f0_max: the F0 range the network can predict, in Hz.
        noise_scale: gain on the noise branch at inference (training always uses 1): on a
            converter's or synthesizer's smoothed mels the network's noise is louder than the
            speech it stands for, which DNSMOS hears as background noise; a published vocoder
            can lower it in its config.json.
    """

    model_type: ClassVar[str] = "ddsp"
    pipeline_tag: ClassVar[str] = "text-to-speech"
    card_tags: ClassVar[tuple[str, ...]] = ("vocoder", "ddsp", "harmonic-plus-noise", "speech")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": dict(channels=32, dilations=[1, 2], harmonics=24, harmonic_fft=512, noise_fft=512),
        # ~50 frames either side; about 1.5 M parameters.
        "fast": dict(channels=160, kernel=5, dilations=[1, 2, 4, 8, 1, 2, 4, 8], harmonics=160,
                     harmonic_fft=1024, noise_fft=512),
    }
    needs_f0: ClassVar[bool] = True  # training feeds it F0 labels (training.vocoder_loop)

    def __init__(self, *, mel: MelConfig | dict | None = None, channels: int = 160, kernel: int = 5,
                 dilations: Sequence[int] = (1, 2, 4, 8), harmonics: int = 160,
                 harmonic_fft: int = 1024, noise_fft: int = 512, f0_min: float = 50.0,
                 f0_max: float = 600.0, noise_scale: float = 1.0):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel
        self.sample_rate = self.mel.sample_rate
        if not 0 < f0_min < f0_max < self.sample_rate / 2:
            raise ValueError(f"need 0 < f0_min < f0_max < Nyquist; got {f0_min}, {f0_max}")
        if min(harmonic_fft, noise_fft) < 2 * self.mel.hop_length:
            raise ValueError(f"harmonic_fft and noise_fft ({harmonic_fft}, {noise_fft}) must be at "
                             f"least twice the mel hop ({self.mel.hop_length}) for the filtered "
                             "frames to overlap-add")
        if not 0 <= noise_scale <= 1:
            raise ValueError(f"noise_scale must be in [0, 1], got {noise_scale}")
        self.noise_scale = float(noise_scale)
        if kernel % 2 == 0 or harmonics < 1 or not dilations:
            raise ValueError("kernel must be odd, harmonics >= 1, and at least one dilation")
        self.harmonics, self.harmonic_fft, self.noise_fft = harmonics, harmonic_fft, noise_fft
        self.f0_min, self.f0_max = float(f0_min), float(f0_max)
        self.conv_pre = weight_norm(nn.Conv1d(self.mel.n_mels, channels, kernel, padding=kernel // 2))
        self.blocks = nn.ModuleList(_Block(channels, kernel, d) for d in dilations)
        self.harmonic_bins, self.noise_bins = harmonic_fft // 2 + 1, noise_fft // 2 + 1
        self.conv_post = nn.Conv1d(channels, 1 + self.harmonic_bins + self.noise_bins, 1)
        with torch.no_grad():  # start quiet: envelopes near exp(-5) rather than around 1
            self.conv_post.weight.mul_(0.1)
            self.conv_post.bias.fill_(-5.0)
            self.conv_post.bias[0] = 0.0
        self.register_buffer("harmonic_window", torch.hann_window(harmonic_fft), persistent=False)
        self.register_buffer("noise_window", torch.hann_window(noise_fft), persistent=False)

    # ------------------------------------------------------------------ network
    def controls(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per frame: "f0" (B, T) in Hz, "harmonic" (B, harmonic_bins, T) and "noise"
        (B, noise_bins, T) log-magnitude envelopes."""
        x = self.conv_pre(mel)
        for block in self.blocks:
            x = block(x)
        out = self.conv_post(F.leaky_relu(x, LRELU_SLOPE))
        span = math.log(self.f0_max / self.f0_min)
        f0 = self.f0_min * torch.exp(torch.sigmoid(out[:, 0]) * span)
        harmonic = out[:, 1:1 + self.harmonic_bins].clamp(max=math.log(100.0))
        noise = out[:, 1 + self.harmonic_bins:].clamp(max=math.log(100.0))
        return {"f0": f0, "harmonic": harmonic, "noise": noise}

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None,
                return_controls: bool = False, noise: torch.Generator | None = None):
        """(B, n_mels, T) or (n_mels, T) -> (B, T * hop) or (T * hop,).

        `f0` (B, T) in Hz drives the oscillators instead of the predicted F0 (teacher forcing
        in training); `return_controls` also returns `controls`' dictionary; `noise` draws the
        noise (default: a fixed seed in eval mode, the global generator in training).
        """
        squeeze = mel.dim() == 2
        mel = mel[None] if squeeze else mel
        controls = self.controls(mel)
        drive = controls["f0"] if f0 is None else f0.to(mel.dtype)
        noise_gain = 1.0 if self.training else self.noise_scale
        wav = self.harmonic_part(drive, controls["harmonic"]) + noise_gain * self.noise_part(controls["noise"], noise)
        wav = wav[0] if squeeze else wav
        return (wav, controls) if return_controls else wav

    # --------------------------------------------------------------- synthesis
    def excitation(self, f0: torch.Tensor) -> torch.Tensor:
        """(B, T) F0 in Hz -> (B, T * hop): every harmonic of F0 below Nyquist (at most
        `harmonics`) at amplitude 1, summed in closed form (a Dirichlet kernel), so its cost does
        not grow with the number of harmonics. Its phase is the running integral of F0."""
        hop, nyquist = self.mel.hop_length, self.sample_rate / 2
        with torch.no_grad():  # F0 is learned from labels; the envelopes shape this signal
            f0_samples = frames_to_samples(f0.detach().float(), hop)
            # The running phase in float64: a float32 sum over minutes of samples drifts audibly.
            step = f0_samples.double() / self.sample_rate
            cycles = torch.cumsum(step, dim=-1) - step  # sample 0 at phase 0
            phase = (2 * math.pi * (cycles - torch.round(cycles))).float()   # in [-pi, pi]
            count = torch.floor(0.98 * nyquist / f0_samples).clamp(1, self.harmonics)
            half = torch.sin(phase / 2)
            small = half.abs() < 1e-4  # where the closed form is 0/0: its limit, K(K+1)/2 * phase
            safe = torch.where(small, torch.ones_like(half), half)
            value = torch.sin(count * phase / 2) * torch.sin((count + 1) * phase / 2) / safe
            return torch.where(small, count * (count + 1) / 2 * phase, value)

    def harmonic_part(self, f0: torch.Tensor, log_envelope: torch.Tensor) -> torch.Tensor:
        """The excitation at `f0`, filtered frame by frame by the harmonic envelope (B,
        harmonic_fft // 2 + 1, T): the envelope's value at k * F0 is harmonic k's amplitude."""
        return self._filtered(self.excitation(f0).to(log_envelope.dtype), log_envelope,
                              self.harmonic_fft, self.harmonic_window)

    def _filtered(self, signal: torch.Tensor, log_envelope: torch.Tensor, n_fft: int,
                  window: torch.Tensor) -> torch.Tensor:
        """`signal` (B, T * hop) with STFT frame t scaled by exp(log_envelope[..., t])."""
        hop, frames = self.mel.hop_length, log_envelope.shape[-1]
        spectrum = torch.stft(signal.float(), n_fft, hop, window=window, center=True,
                              return_complex=True)[..., :frames]
        shaped = spectrum * torch.exp(log_envelope.float())
        return torch.istft(shaped, n_fft, hop, window=window, center=True,
                           length=frames * hop).to(log_envelope.dtype)

    def noise_part(self, log_envelope: torch.Tensor, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
        """White noise filtered frame by frame by the noise envelope (B, noise_fft // 2 + 1, T)."""
        if generator is None and not self.training:
            generator = torch.Generator(device=log_envelope.device).manual_seed(NOISE_SEED)
        samples = log_envelope.shape[-1] * self.mel.hop_length
        white = torch.randn((log_envelope.shape[0], samples), generator=generator,
                            device=log_envelope.device)
        return self._filtered(white, log_envelope, self.noise_fft, self.noise_window)

    # ---------------------------------------------------------------- training
    def f0_loss(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error in semitones over the frames the labels call voiced (target > 0)."""
        voiced = target > 0
        if not bool(voiced.any()):
            return predicted.sum() * 0.0
        error = 12 * torch.log2(predicted[voiced] / target[voiced])
        return error.abs().mean()

    @torch.inference_mode()
    def generate(self, mels: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Waveforms for one mel (n_mels, frames) or several (each its own length)."""
        single = torch.is_tensor(mels) and mels.dim() == 2
        items = [mels] if single else list(mels)
        out = [self(m[None])[0] for m in items]
        return out[0] if single else out
