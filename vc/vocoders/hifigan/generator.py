"""HiFi-GAN's generator (Kong et al., NeurIPS 2020), with an optional inverse-STFT head.

The classic generator up-samples mel frames to the waveform with transposed convolutions and
multi-receptive-field residual blocks. With ``head="istft"`` the last layer instead predicts a
log-magnitude and a phase per STFT bin and an inverse STFT makes the waveform (iSTFTNet, Kaneko
et al. 2022; Vocos, Siuzdenko et al. 2023). With no up-sampling at all the network runs at the
mel frame rate, which is what makes the ``fast`` preset quick on a CPU.

Module names mirror the official implementation (conv_pre, ups, resblocks, conv_post) so
released generator weights map onto it one to one (`vc.vocoders.hifigan.official`).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ...chunking import process_in_chunks
from ...hub import HubModel, as_dataclass
from ...mel import MelConfig

LRELU_SLOPE = 0.1


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        module.weight.data.normal_(0.0, 0.01)


class ResBlock1(nn.Module):
    """Two dilated convolutions per dilation, each pair wrapped in a residual connection."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)))
            for d in dilations)
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, padding=_padding(kernel)))
            for _ in dilations)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """One dilated convolution per dilation, each with a residual connection (V3's block)."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)))
            for d in dilations)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


_V1 = dict(resblock="1", upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
           upsample_initial_channel=512, resblock_kernel_sizes=[3, 7, 11],
           resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]])
_V3 = dict(resblock="2", upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
           upsample_initial_channel=256, resblock_kernel_sizes=[3, 5, 7],
           resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]])


class HiFiGAN(HubModel):
    """HiFi-GAN generator: log-mel frames (B, n_mels, frames) -> waveform (B, frames * hop).

    Args:
        mel: the mel settings it was trained on (it refuses others, see `vc.pipeline`).
        resblock: "1" (V1/V2's block) or "2" (V3's).
        upsample_rates, upsample_kernel_sizes: the transposed-convolution stages.
        upsample_initial_channel: channels after conv_pre; halved at each up-sampling stage.
        resblock_kernel_sizes, resblock_dilation_sizes: the multi-receptive-field fusion.
        head: "waveform" (conv + tanh, as published) or "istft" (magnitude and phase, then
            an inverse STFT with `istft_n_fft` and a hop of what the up-sampling leaves).
        istft_n_fft: FFT size of the inverse-STFT head.
        post_kernel_size: kernel of the last convolution.
    """

    model_type: ClassVar[str] = "hifigan"
    pipeline_tag: ClassVar[str] = "text-to-speech"  # the Hub's task for mel->audio vocoders
    card_tags: ClassVar[tuple[str, ...]] = ("vocoder", "hifigan", "speech")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "v1": _V1,
        "v2": {**_V1, "upsample_initial_channel": 128},
        "v3": _V3,
        # V3 at a quarter of its width: 0.12M parameters.
        "tiny": {**_V3, "upsample_initial_channel": 64},
        # Frame-rate network + inverse STFT (Vocos-style): no up-sampling, so every convolution
        # runs at 62.5 frames/s instead of up to 16 000 samples/s. It sees ~50 frames either
        # side, so it must train on segments several times that long (128 frames).
        "fast": dict(resblock="2", upsample_rates=[], upsample_kernel_sizes=[],
                     upsample_initial_channel=192, resblock_kernel_sizes=[3, 5, 7],
                     resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]], head="istft",
                     istft_n_fft=1024, post_kernel_size=3),
    }

    def __init__(self, *, mel: MelConfig | dict | None = None, resblock: str = "2",
                 upsample_rates: Sequence[int] = (8, 8, 4),
                 upsample_kernel_sizes: Sequence[int] = (16, 16, 8),
                 upsample_initial_channel: int = 64,
                 resblock_kernel_sizes: Sequence[int] = (3, 5, 7),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 2), (2, 6), (3, 12)),
                 head: str = "waveform", istft_n_fft: int = 16, post_kernel_size: int = 7):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel
        self.sample_rate = self.mel.sample_rate
        if resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {resblock!r}")
        if head not in ("waveform", "istft"):
            raise ValueError(f"head must be 'waveform' or 'istft', got {head!r}")
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        upsampling = math.prod(upsample_rates)
        self.istft_hop = self.mel.hop_length // upsampling if head == "istft" else 0
        if head == "istft":
            if self.mel.hop_length % upsampling or self.istft_hop < 1:
                raise ValueError(f"the up-sampling ({upsampling}x) must divide the mel hop "
                                 f"({self.mel.hop_length}); the inverse STFT does the rest")
            if istft_n_fft < self.istft_hop:
                raise ValueError(f"istft_n_fft ({istft_n_fft}) must be at least its hop ({self.istft_hop})")
        elif upsampling != self.mel.hop_length:
            raise ValueError(f"the up-sampling rates multiply to {upsampling}, but one mel frame "
                             f"is {self.mel.hop_length} samples; they must be equal")
        self.head, self.istft_n_fft = head, istft_n_fft
        self.num_kernels = len(resblock_kernel_sizes)
        block = ResBlock1 if resblock == "1" else ResBlock2
        ch = upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(self.mel.n_mels, ch, 7, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)))
        self.ups.apply(_init)
        self.resblocks = nn.ModuleList()
        stages = max(1, len(upsample_rates))
        for i in range(stages):
            width = ch // 2 ** (i + 1) if upsample_rates else ch
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(width, k, d))
        out_width = ch // 2 ** len(upsample_rates)
        out_channels = 1 if head == "waveform" else istft_n_fft + 2
        self.conv_post = weight_norm(nn.Conv1d(out_width, out_channels, post_kernel_size,
                                               padding=post_kernel_size // 2))
        self.conv_post.apply(_init)
        self.register_buffer("istft_window", torch.hann_window(istft_n_fft) if head == "istft"
                             else torch.empty(0), persistent=False)

    def _fuse(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Multi-receptive-field fusion: the mean of the stage's residual blocks."""
        blocks = self.resblocks[stage * self.num_kernels:(stage + 1) * self.num_kernels]
        return sum(b(x) for b in blocks) / self.num_kernels

    def _last_layer(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        if not self.ups:
            x = self._fuse(x, 0)
        for i, up in enumerate(self.ups):
            x = self._fuse(up(F.leaky_relu(x, LRELU_SLOPE)), i)
        return self.conv_post(F.leaky_relu(x))  # the official code uses the default slope here

    def forward(self, mel: torch.Tensor, return_spectrum: bool = False):
        """(B, n_mels, frames) or (n_mels, frames) -> (B, frames * hop) or (frames * hop,).

        With `return_spectrum` (inverse-STFT head, batched input) also the head's log-magnitude
        and phase: (wav, log_magnitude, phase), for training to supervise them directly.
        """
        squeeze = mel.dim() == 2
        mel = mel[None] if squeeze else mel
        if self.head == "waveform":
            wav = torch.tanh(self._last_layer(mel)[:, 0])
        else:
            log_magnitude, phase = self.spectrum(mel)
            wav = self.synthesize(log_magnitude, phase)
            if return_spectrum:
                return wav, log_magnitude, phase
        return wav[0] if squeeze else wav

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverse-STFT head's log-magnitude and phase, each (B, istft_n_fft // 2 + 1,
        frames * upsampling), before the inverse STFT (training supervises them directly)."""
        if self.head != "istft":
            raise ValueError("only the inverse-STFT head has a spectrum; this one makes waveforms")
        x = self._last_layer(mel)
        bins = self.istft_n_fft // 2 + 1
        # The log-magnitude is capped so early training cannot overflow the exponential.
        return x[:, :bins].clamp(max=math.log(100.0)), x[:, bins:]

    def synthesize(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """Waveform (B, frames * hop) from `spectrum`'s output, by inverse STFT."""
        spectrum = torch.polar(torch.exp(log_magnitude.float()), phase.float())
        length = log_magnitude.shape[-1] * self.istft_hop
        return torch.istft(spectrum, self.istft_n_fft, self.istft_hop, window=self.istft_window,
                           center=True, length=length)

    @torch.inference_mode()
    def generate(self, mels: torch.Tensor | Sequence[torch.Tensor], chunk_frames: int = 1024,
                 overlap_frames: int = 64) -> torch.Tensor | list[torch.Tensor]:
        """Waveforms for one mel (n_mels, frames) or several, in bounded memory.

        Several mels are padded with silence to one batch and run together; long inputs run in
        chunks of `chunk_frames` cross-faded over `overlap_frames` (the presets see at most about
        50 frames either side), so memory does not grow with the length. Returns a tensor for one mel and a list (each its own length) for several.
        """
        single = torch.is_tensor(mels) and mels.dim() == 2
        items = [mels] if single else list(mels)
        lengths = [m.shape[-1] for m in items]
        silence = math.log(self.mel.log_floor) if self.mel.compression == "log" else 0.0
        batch = torch.full((len(items), self.mel.n_mels, max(lengths)), silence,
                           device=items[0].device)
        for i, m in enumerate(items):
            batch[i, :, :m.shape[-1]] = m
        hop = self.mel.hop_length
        with parametrize.cached():  # weight norm computed once per call, not per chunk
            wav = process_in_chunks(batch, self, chunk_frames, overlap_frames, scale=hop)
        out = [wav[i, :n * hop] for i, n in enumerate(lengths)]
        return out[0] if single else out
