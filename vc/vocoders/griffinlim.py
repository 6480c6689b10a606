"""Griffin-Lim: mel frames -> waveform with no training. The vocoder that always works.

Mel bands are mapped back to linear frequencies by non-negative least squares (projected
gradient on the filterbank), then the phase is estimated with the fast Griffin-Lim algorithm
(Perraudin et al., 2013: Griffin-Lim with momentum), batched in torch.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ..mel import MelConfig, MelSpectrogram


class GriffinLim(nn.Module):
    """Invert log-mel frames (B, n_mels, frames) or (n_mels, frames) to audio (B, T) or (T,).

    Args:
        mel: the settings the mels were computed with.
        n_iter: phase-estimation iterations (32 is a fair speed/quality trade-off).
        momentum: fast Griffin-Lim's momentum (0 gives the classic algorithm).
        power: raise magnitudes to this power before phase estimation (>1 sharpens harmonics
            but moves the spectrum away from the given mel).
        seed: the random initial phase, fixed so output is reproducible.
    """

    def __init__(self, mel: MelConfig | Mapping[str, Any], n_iter: int = 32,
                 momentum: float = 0.99, power: float = 1.0, seed: int = 0):
        super().__init__()
        self.mel_fn = MelSpectrogram(mel)
        self.mel = self.config = self.mel_fn.config  # vocoders expose their MelConfig as .mel
        self.n_iter, self.momentum, self.power, self.seed = n_iter, momentum, power, seed
        self.sample_rate = self.config.sample_rate

    def mel_to_linear(self, mel: torch.Tensor, steps: int = 30) -> torch.Tensor:
        """Linear magnitudes (B, n_fft//2+1, frames) whose mel projection best fits `mel`."""
        target = self.mel_fn.decompress(mel)
        if self.config.power != 1.0:
            target = target.clamp_min(0).pow(1.0 / self.config.power)
        basis = self.mel_fn.filterbank
        # Start from the pseudo-inverse, then projected gradient descent keeps it non-negative.
        spec = torch.linalg.pinv(basis) @ target
        spec = spec.clamp_min(1e-8)
        if self.config.power == 1.0:
            gram = basis.T @ basis
            step = 1.0 / torch.linalg.matrix_norm(gram, ord=2)
            basis_t_target = basis.T @ target
            for _ in range(steps):
                spec = (spec - step * (gram @ spec - basis_t_target)).clamp_min(1e-8)
        return spec

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        squeeze = mel.dim() == 2
        if squeeze:
            mel = mel.unsqueeze(0)
        c = self.config
        magnitude = self.mel_to_linear(mel.float()).pow(self.power)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        # One initial phase shared by every item, so a batch gives what items alone give.
        phase = torch.rand(magnitude.shape[1:], generator=generator).expand_as(magnitude) * 2 * torch.pi
        angles = torch.polar(torch.ones_like(magnitude), phase.to(magnitude.device))
        length = (magnitude.shape[-1] - 1) * c.hop_length if c.center else None
        stft_args = dict(n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length or c.n_fft,
                         window=self.mel_fn.window, center=c.center)
        previous = torch.zeros_like(angles)
        wav = None
        for _ in range(self.n_iter):
            wav = torch.istft(magnitude * angles, length=length, **stft_args)
            rebuilt = torch.stft(wav, pad_mode=c.pad_mode, return_complex=True, **stft_args)
            angles = rebuilt - (self.momentum / (1 + self.momentum)) * previous
            previous = rebuilt
            angles = angles / angles.abs().clamp_min(1e-8)
        wav = torch.istft(magnitude * angles, length=length, **stft_args)
        peak = wav.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
        wav = wav * torch.clamp(0.95 / peak, max=1.0)  # never clip
        return wav.squeeze(0) if squeeze else wav
