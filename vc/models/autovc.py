"""AutoVC (Qian et al., ICML 2019): zero-shot voice conversion with only an autoencoder loss.

A content encoder squeezes a mel spectrogram (plus the source speaker's GE2E embedding) through
a narrow, time-down-sampled bottleneck; a decoder rebuilds the mel from those codes and a
speaker embedding. Trained only to reconstruct its input, the bottleneck is tight enough that
speaker identity is dropped from the codes and taken from the embedding, so decoding with
another speaker's embedding converts the voice.

    model = AutoVC.from_preset("small")
    src, tgt = model.speaker([], source_embedding), model.speaker([], target_embedding)
    out = model.convert(mel[None], src[None], tgt[None])      # (1, n_mels, frames)

Weights released by the authors are imported by `import_official_autovc` (see
`vc.models.autovc_import`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..hub import as_dataclass
from ..mel import MelConfig
from .base import ContentFrames, ConversionModel, pad_to_multiple

KERNEL_SIZE = 5
POSTNET_LAYERS = 5


def downsample_codes(outputs: torch.Tensor, freq: int) -> torch.Tensor:
    """Bottleneck codes from bidirectional LSTM outputs, one code per `freq` frames.

    Code k joins the forward state at the *end* of its window (frame (k+1)·freq - 1) with the
    backward state at its *start* (frame k·freq), so each code has seen its whole window from
    both sides; this is how the paper's released code picks them.

    Args:
        outputs: (B, T, 2H), forward direction in [..., :H], backward in [..., H:];
            T a multiple of `freq`.
    Returns:
        (B, T // freq, 2H)
    """
    frames, hidden = outputs.shape[1], outputs.shape[2] // 2
    if frames % freq:
        raise ValueError(f"{frames} frames is not a multiple of freq={freq}")
    forward = outputs[:, freq - 1::freq, :hidden]
    backward = outputs[:, ::freq, hidden:]
    return torch.cat([forward, backward], dim=-1)


def upsample_codes(codes: torch.Tensor, freq: int) -> torch.Tensor:
    """Repeat each code `freq` times along time: (B, N, C) -> (B, N·freq, C)."""
    return codes.repeat_interleave(freq, dim=1)


class ConvNorm(nn.Module):
    """Conv1d with 'same' padding, then BatchNorm: (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, channels_in: int, channels_out: int, gain: str = "linear"):
        super().__init__()
        self.conv = nn.Conv1d(channels_in, channels_out, KERNEL_SIZE, padding=KERNEL_SIZE // 2)
        self.norm = nn.BatchNorm1d(channels_out)
        # Xavier init scaled for the activation that follows, as in the paper's code.
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class ContentEncoder(nn.Module):
    """(mel (B, n_mels, T), embedding (B, dim_emb)) -> codes (B, T // freq, 2·dim_neck)."""

    def __init__(self, n_mels: int, dim_emb: int, dim_conv: int, dim_neck: int, freq: int):
        super().__init__()
        self.freq = freq
        self.convs = nn.ModuleList(
            ConvNorm(n_mels + dim_emb if i == 0 else dim_conv, dim_conv, gain="relu")
            for i in range(3))
        self.lstm = nn.LSTM(dim_conv, dim_neck, num_layers=2, batch_first=True,
                            bidirectional=True)

    def forward(self, mel: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        # Mel channels first, embedding after: the order the official weights expect.
        x = torch.cat([mel, embedding[:, :, None].expand(-1, -1, mel.shape[-1])], dim=1)
        for conv in self.convs:
            x = F.relu(conv(x))
        outputs, _ = self.lstm(x.transpose(1, 2))
        return downsample_codes(outputs, self.freq)


class Decoder(nn.Module):
    """(up-sampled codes (B, T, 2·dim_neck), embedding (B, dim_emb)) -> mel (B, n_mels, T)."""

    def __init__(self, n_mels: int, dim_neck: int, dim_emb: int, dim_pre: int, dim_lstm: int):
        super().__init__()
        self.input_lstm = nn.LSTM(2 * dim_neck + dim_emb, dim_pre, batch_first=True)
        self.convs = nn.ModuleList(ConvNorm(dim_pre, dim_pre, gain="relu") for _ in range(3))
        self.lstm = nn.LSTM(dim_pre, dim_lstm, num_layers=2, batch_first=True)
        self.proj = nn.Linear(dim_lstm, n_mels)
        nn.init.xavier_uniform_(self.proj.weight)

    def forward(self, codes: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        x = torch.cat([codes, embedding[:, None, :].expand(-1, codes.shape[1], -1)], dim=-1)
        x, _ = self.input_lstm(x)
        x = x.transpose(1, 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        x, _ = self.lstm(x.transpose(1, 2))
        return self.proj(x).transpose(1, 2)


class Postnet(nn.Module):
    """Five conv layers predicting a residual mel correction: (B, n_mels, T) -> same."""

    def __init__(self, n_mels: int, channels: int):
        super().__init__()
        sizes = [n_mels] + [channels] * (POSTNET_LAYERS - 1) + [n_mels]
        last = POSTNET_LAYERS - 1
        self.layers = nn.ModuleList(
            ConvNorm(sizes[i], sizes[i + 1], gain="linear" if i == last else "tanh")
            for i in range(POSTNET_LAYERS))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


class AutoVC(ConversionModel):
    """AutoVC (Qian et al., ICML 2019): a bottleneck autoencoder over mel spectrograms whose
    decoder is conditioned on a GE2E speaker embedding; zero-shot voice conversion.

    The network works on normalised mels, (log-mel - mel_mean) / mel_std; every method takes
    and returns mels in the log-mel domain that `mel` defines.

    Args:
        dim_neck: LSTM units per direction at the bottleneck (codes have 2·dim_neck dims).
        dim_emb: speaker embedding size (256 for GE2E).
        dim_pre: width of the decoder's first LSTM and its convolutions.
        freq: time down-sampling of the codes (one code per `freq` frames).
        dim_conv: width of the encoder's convolutions.
        dim_lstm: width of the decoder's 2-layer LSTM.
        dim_postnet: width of the post-net's hidden convolutions.
        content_weight: λ, the weight of the content-code consistency loss.
        mel_mean, mel_std: normalisation constants of the input mels.
        mel: the mel settings (None: today's default `MelConfig`).
    """

    model_type = "autovc"
    speaker_input = "embedding"
    presets = {
        # As published (Generator(32, 256, 512, 32) with 512/1024/512 internal widths).
        "paper": dict(dim_neck=32, dim_emb=256, dim_pre=512, freq=32, dim_conv=512,
                      dim_lstm=1024, dim_postnet=512),
        # About 5 MB; the official training script's default bottleneck (16, freq 16).
        "small": dict(dim_neck=16, dim_emb=256, dim_pre=96, freq=16, dim_conv=128,
                      dim_lstm=160, dim_postnet=96),
    }

    def __init__(self, *, dim_neck: int = 16, dim_emb: int = 256, dim_pre: int = 96,
                 freq: int = 16, dim_conv: int = 128, dim_lstm: int = 160,
                 dim_postnet: int = 96, content_weight: float = 1.0, mel_mean: float = -5.0,
                 mel_std: float = 2.0, mel: MelConfig | Mapping[str, Any] | None = None):
        super().__init__()
        if min(dim_neck, dim_emb, dim_pre, freq, dim_conv, dim_lstm, dim_postnet) < 1:
            raise ValueError("AutoVC sizes and freq must all be at least 1")
        if mel_std <= 0:
            raise ValueError(f"mel_std must be positive, got {mel_std}")
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel  # pin today's default mel settings in config.json
        self.dim_neck, self.dim_emb, self.freq = dim_neck, dim_emb, freq
        self.frame_multiple = freq
        self.content_weight = content_weight
        self.mel_mean, self.mel_std = float(mel_mean), float(mel_std)
        n_mels = self.mel.n_mels
        self.encoder = ContentEncoder(n_mels, dim_emb, dim_conv, dim_neck, freq)
        self.decoder = Decoder(n_mels, dim_neck, dim_emb, dim_pre, dim_lstm)
        self.postnet = Postnet(n_mels, dim_postnet)

    # ------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self.decoder.proj.weight.device

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        return mel * self.mel_std + self.mel_mean

    def _check_speaker(self, speaker: torch.Tensor, batch: int) -> None:
        if speaker.dim() != 2 or speaker.shape != (batch, self.dim_emb):
            raise ValueError(f"speaker must be ({batch}, {self.dim_emb}) embeddings, got "
                             f"{tuple(speaker.shape)}")

    def _decode_normalized(self, codes: torch.Tensor, embedding: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised mels (B, n_mels, N·freq) before and after the post-net."""
        before = self.decoder(upsample_codes(codes, self.freq), embedding)
        return before, before + self.postnet(before)

    # ------------------------------------------------------ the interface
    def speaker(self, mels: Sequence[torch.Tensor], embedding: torch.Tensor | np.ndarray | None
                ) -> torch.Tensor:
        """The target/source representation (dim_emb,): the GE2E embedding itself.

        `mels` are not used (AutoVC takes the speaker from the embedding only). `embedding` is
        (dim_emb,), or (N, dim_emb) for N clips of one speaker, averaged and renormalised.
        """
        if embedding is None:
            raise ValueError("AutoVC is conditioned on a GE2E speaker embedding; pass "
                             "embedding=vc.speaker.SpeakerEncoder.pretrained().embed(clip)")
        embedding = torch.as_tensor(embedding, dtype=torch.float32, device=self.device)
        if embedding.dim() == 2:
            mean = embedding.mean(dim=0)
            embedding = mean / mean.norm().clamp_min(1e-12)
        if embedding.shape != (self.dim_emb,):
            raise ValueError(f"expected a ({self.dim_emb},) speaker embedding, got "
                             f"{tuple(embedding.shape)}")
        return embedding

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Content codes (B, T // freq, 2·dim_neck) of `mel` (B, n_mels, T), T a multiple of
        freq, spoken by `speaker` (B, dim_emb)."""
        if mel.dim() != 3 or mel.shape[1] != self.mel.n_mels:
            raise ValueError(f"mel must be (B, {self.mel.n_mels}, frames), got {tuple(mel.shape)}")
        if mel.shape[-1] == 0 or mel.shape[-1] % self.freq:
            raise ValueError(f"mel has {mel.shape[-1]} frames; AutoVC needs a positive multiple "
                             f"of freq={self.freq} (convert() pads for you)")
        self._check_speaker(speaker, mel.shape[0])
        return self.encoder(self.normalize(mel), speaker)

    def decode(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, N·freq) after the post-net, from codes (B, N, 2·dim_neck) and the
        target `speaker` (B, dim_emb)."""
        if content.dim() != 3 or content.shape[-1] != 2 * self.dim_neck:
            raise ValueError(f"codes must be (B, N, {2 * self.dim_neck}), got "
                             f"{tuple(content.shape)}")
        self._check_speaker(speaker, content.shape[0])
        return self.denormalize(self._decode_normalized(content, speaker)[1])

    def forward(self, mel: torch.Tensor, source: torch.Tensor, target: torch.Tensor
                ) -> torch.Tensor:
        """`convert`: mel (B, n_mels, T) of `source` (B, dim_emb) re-spoken by `target`."""
        return self.convert(mel, source, target)

    def content_frames(self, mel: torch.Tensor, speaker: torch.Tensor | None = None
                       ) -> ContentFrames:
        """Bottleneck codes of one mel (n_mels, T): features (ceil(T / freq), 2·dim_neck) at
        mel.frame_rate / freq frames per second; codes None (AutoVC is not quantised).

        Args:
            speaker: the source speaker's embedding (dim_emb,), which the encoder was trained
                with. Default: a zero vector, which leaves the codes speaker-neutral but off
                the training distribution; pass the embedding when you have it.
        """
        if speaker is None:
            speaker = torch.zeros(self.dim_emb)
        speaker = torch.as_tensor(speaker, dtype=torch.float32, device=self.device)
        padded = pad_to_multiple(mel[None], self.freq)
        codes = self.encode(padded, speaker[None])[0]
        return ContentFrames(features=codes, frame_rate=self.mel.frame_rate / self.freq)

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """L2 reconstruction before and after the post-net plus λ·L1 content-code consistency
        (the codes of the post-net output, re-encoded with the same embedding, should equal
        the input's), as in the paper.

        Args:
            batch: {"mel": (B, n_mels, T) log-mels, T a multiple of freq, "embedding":
                (B, dim_emb), "speaker": (B,) ids (unused)}.
        Returns:
            the loss (on normalised mels), and parts for logging: "recon" and "recon_pre",
            the mean squared error after and before the post-net in log-mel units (so they
            compare across models and normalisations), and "content", the L1 code distance.
        """
        embedding = batch["embedding"]
        target = self.normalize(batch["mel"])
        codes = self.encoder(target, embedding)
        before, after = self._decode_normalized(codes, embedding)
        recon_pre = F.mse_loss(before, target)
        recon = F.mse_loss(after, target)
        content = F.l1_loss(self.encoder(after, embedding), codes)
        loss = recon_pre + recon + self.content_weight * content
        scale = self.mel_std ** 2
        return loss, {"recon": recon.item() * scale, "recon_pre": recon_pre.item() * scale,
                      "content": content.item()}


def import_official_autovc(source: Any, *, freq: int = 32) -> AutoVC:
    """AutoVC with the weights the paper's authors released (see
    `vc.models.autovc_import.import_official_autovc`, which this forwards to)."""
    from .autovc_import import import_official_autovc as _import
    return _import(source, freq=freq)
