"""A phone classifier on Whisper's encoder: frame phone labels without decoding a transcript.

    head = load_model("whisper-phones")               # this module's weights
    posteriors = head(features)                       # (B, n_phones, T) logits at 50 Hz

Whisper's encoder output (512 channels at 50 Hz for Whisper-base) already holds what was said:
its decoder reads words from it. Reading a transcript costs the decoder's token-by-token search
and then a forced aligner, which is most of a conversion's time; a small convolutional head
trained on frame phone labels (the corpus builder's exact alignments and pocketsphinx's forced
alignments of real speech) reads phones from the same features in one pass. The encoder sees the
clip with `tail_seconds` of silence after it, as the head was trained, not a 30 s window.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.phones import PHONES
from ..hub import HubModel
from .vqvae import ChannelNorm


class _Residual(nn.Module):
    """x + conv1x1(GELU(norm(dilated conv(x))))."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.norm = ChannelNorm(channels)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(F.gelu(self.norm(self.conv(x))))


class WhisperPhoneHead(HubModel):
    """Whisper encoder features (B, feature_dim, T) -> phone logits (B, len(PHONES), T).

    Args:
        whisper: the Whisper size whose encoder it reads (its features must match).
        feature_dim: that encoder's width (512 for base).
        tail_seconds: silence after the clip when encoding, as in training.
        channels, kernel, dilations: the head (one residual block per dilation).
        dropout: on the input features while training.
    """

    model_type: ClassVar[str] = "whisper-phone-head"
    pipeline_tag: ClassVar[str] = "automatic-speech-recognition"
    card_tags: ClassVar[tuple[str, ...]] = ("phone-recognition", "whisper", "speech")
    presets = {
        "tiny": dict(channels=32, dilations=[1]),
        "small": dict(channels=256, dilations=[1, 2, 1]),
    }

    def __init__(self, *, whisper: str = "base", feature_dim: int = 512, tail_seconds: float = 1.0,
                 channels: int = 256, kernel: int = 5, dilations: Sequence[int] = (1, 2, 1),
                 dropout: float = 0.1):
        super().__init__()
        if kernel % 2 == 0 or not dilations or channels < 1:
            raise ValueError("kernel must be odd, channels positive and at least one dilation given")
        if not 0 <= tail_seconds < 30:
            raise ValueError(f"tail_seconds must be in [0, 30), got {tail_seconds}")
        self.whisper, self.feature_dim, self.tail_seconds = str(whisper), int(feature_dim), float(tail_seconds)
        self.frame_rate = 50.0  # Whisper's encoder: 100 Hz features, stride 2
        self.dropout = nn.Dropout(dropout)
        self.inp = nn.Conv1d(feature_dim, channels, kernel, padding=kernel // 2)
        self.blocks = nn.ModuleList(_Residual(channels, kernel, d) for d in dilations)
        self.norm = ChannelNorm(channels)
        self.out = nn.Conv1d(channels, len(PHONES), 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 3 or features.shape[1] != self.feature_dim:
            raise ValueError(f"expected Whisper features (B, {self.feature_dim}, T), got {tuple(features.shape)}")
        x = self.inp(self.dropout(features))
        for block in self.blocks:
            x = block(x)
        return self.out(F.gelu(self.norm(x)))

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy against `labels` (B, T) where `mask` (B, T) is true; also frame accuracy."""
        logits = self(batch["features"])
        mask = batch["mask"]
        ce = F.cross_entropy(logits.transpose(1, 2)[mask], batch["labels"][mask])
        accuracy = (logits.argmax(1)[mask] == batch["labels"][mask]).float().mean()
        return ce, {"ce": ce.item(), "accuracy": accuracy.item()}


__all__ = ["WhisperPhoneHead"]
