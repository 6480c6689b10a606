"""VQ-VAE voice conversion in the style of the ZeroSpeech 2020 systems.

A convolutional encoder turns a log-mel (B, n_mels, T) into one vector per `frames_per_code`
frames; a vector quantiser snaps each to the nearest of `codebook_size` codewords, a bottleneck
narrow enough to drop most of who is speaking while keeping what is said. A recurrent decoder
up-samples the codes back to the frame rate and renders them in a given speaker's voice:

    model = VQVAE.from_preset("small")
    codes = model.encode(mel, source)                 # VQVAECodes: bottom (B, T / 2) int64
    out = model.decode(codes, target)                 # (B, n_mels, T)
    frames = model.content_frames(mel[0])             # features, codes, frame rate for ABX

The speaker is either a GE2E embedding (`speaker_conditioning="embedding"`, zero-shot: any
reference voice works) or a row of a learned speaker table (`"table"`, the ZeroSpeech setting,
which knows only its training speakers). With `levels=2` a second, coarser code level
(VQ-VAE-2 style) is taken from the bottom level's hidden features, down-sampled further, and
conditions the decoder alongside the bottom codes.

References: van den Oord et al., "Neural Discrete Representation Learning" (2017);
Razavi et al., "Generating Diverse High-Fidelity Images with VQ-VAE-2" (2019);
van Niekerk, Nortje, Kamper, "Vector-quantized neural networks for acoustic unit discovery
in the ZeroSpeech 2020 challenge" (Interspeech 2020).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import as_dataclass
from ..mel import MelConfig
from .base import ContentFrames, ConversionModel, pad_to_multiple, unit_embedding
from .quantize import VectorQuantizer

SPEAKER_CONDITIONINGS = ("embedding", "table")
RECON_LOSSES = ("l1", "mse")


@dataclass
class VQVAECodes:
    """The discrete content of a batch of mels, as `VQVAE.encode` returns it.

    Attributes:
        bottom: codebook ids (B, T / frames_per_code), int64.
        top: codebook ids (B, T / (frames_per_code * top_frames_per_code)) of the coarser
            level when the model has `levels=2`, else None.
    """

    bottom: torch.Tensor
    top: torch.Tensor | None = None


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of (B, C, T), frame by frame.

    Unlike BatchNorm it behaves the same in training and inference, and unlike GroupNorm a
    frame's features do not depend on how long the utterance is.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResidualBlock(nn.Module):
    """x + 1x1(ReLU(norm(conv3(x)))) on (B, C, T); keeps the length."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=1), ChannelNorm(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _halvings(factor: int) -> int:
    """How many stride-2 convolutions make a down-sampling by `factor` (a power of two)."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"down-sampling factors must be powers of two (1, 2, 4, ...), "
                         f"got {factor}")
    return int(math.log2(factor))


def _downsampler(in_channels: int, channels: int, factor: int) -> nn.Sequential:
    """Stride-2 convolutions (B, in_channels, T) -> (B, channels, T / factor); T a multiple
    of `factor`. The kernel-4 / padding-1 pair halves an even length exactly."""
    layers: list[nn.Module] = []
    for i in range(_halvings(factor)):
        layers += [nn.Conv1d(in_channels if i == 0 else channels, channels, 4, stride=2, padding=1),
                   ChannelNorm(channels), nn.ReLU()]
    return nn.Sequential(*layers)


class CodeProjection(nn.Module):
    """Hidden (B, C, T') -> pre-quantisation features (B, T', code_dim), channel-last.

    The LayerNorm pins the features' scale: otherwise encoder and EMA codebook can shrink
    together, which lowers the commitment loss without making the codes any better.
    """

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.proj = nn.Conv1d(channels, code_dim, 1)
        self.norm = nn.LayerNorm(code_dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(hidden).transpose(1, 2))


def time_jitter(vectors: torch.Tensor, probability: float) -> torch.Tensor:
    """Replace each of the vectors (B, T', D) by its left or right neighbour with probability
    `probability` / 2 each (edges clamp), as the ZeroSpeech 2020 VQ-VAE does in training: the
    decoder cannot rely on exact code positions, which pushes codes toward slower, phone-like
    units."""
    batch, length, _ = vectors.shape
    step = torch.multinomial(
        torch.tensor([probability / 2, 1 - probability, probability / 2], device=vectors.device),
        batch * length, replacement=True).view(batch, length) - 1
    index = (torch.arange(length, device=vectors.device) + step).clamp(0, length - 1)
    return vectors.gather(1, index[..., None].expand_as(vectors))


class VQVAE(ConversionModel):
    """ZeroSpeech-2020-style VQ-VAE: discrete content codes and a speaker-conditioned decoder.

    In training, the first batch seeds every codeword with an encoder feature, and codewords
    that fall out of use are moved back onto the data (`dead_code_threshold`); both keep the
    codebook from collapsing onto a handful of codes.

    Args:
        mel: the mel settings the model reads and writes (default `MelConfig()`).
        mel_mean, mel_std: constants that normalise log-mels inside the model (inputs and
            outputs stay in the log-mel domain); defaults measured on LibriSpeech
            train-clean-100 prepared with `vc.audio.prepare_speech` and `MelConfig()`.
        encoder_channels: width of the convolutional encoder.
        encoder_blocks: residual blocks after the down-sampling.
        frames_per_code: mel frames per bottom-level code (a power of two, e.g. 2 or 4).
        codebook_size, code_dim: number and size of the codewords (each level).
        beta: commitment-loss weight.
        ema: learn codebooks by exponential moving averages (else by the codebook loss).
        ema_decay: EMA decay per training step.
        levels: 1, or 2 for a coarser top code level that also conditions the decoder.
        top_frames_per_code: further down-sampling of the top level (levels=2).
        speaker_conditioning: "embedding" (GE2E, zero-shot) or "table" (learned per training
            speaker; needs `n_speakers`).
        n_speakers: rows of the speaker table ("table" only).
        embedding_dim: size of the GE2E speaker embedding ("embedding").
        speaker_table_dim: size of a speaker-table row ("table").
        decoder_channels: width of the decoder's input convolution and of each GRU direction.
        decoder_layers: bidirectional GRU layers in the decoder.
        jitter: time-jitter probability applied to bottom codes in training (0 disables).
        dead_code_threshold: EMA codewords used less than this many times per batch (running
            average) are moved onto random encoder features in training (0 disables).
        recon_loss: "l1" or "mse" between output and input log-mels.
    """

    model_type = "vqvae"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # Sizes of van Niekerk et al.'s ZeroSpeech 2020 VQ-VAE (github.com/bshall/ZeroSpeech,
        # config/model/default.yaml, model.py): 768-channel conv encoder, one stride-2
        # down-sampling, 512 x 64 EMA codebook (decay 0.999, beta 0.25), time jitter 0.5,
        # 64-d speaker table rows. Their decoder is a WaveRNN vocoder conditioned through a
        # 2-layer BiGRU; ours predicts mels, so its BiGRU is wider (256 per direction).
        "paper": dict(encoder_channels=768, encoder_blocks=2, frames_per_code=2,
                      codebook_size=512, code_dim=64, beta=0.25, ema=True, ema_decay=0.999,
                      jitter=0.5, speaker_table_dim=64, decoder_channels=256, decoder_layers=2),
        # 1.3 M parameters (5 MB); a step on a batch of 8 x 128 frames takes about 0.3 s on
        # 2 CPU cores.
        "small": dict(encoder_channels=192, encoder_blocks=1, frames_per_code=2,
                      codebook_size=256, code_dim=64, beta=0.25, ema=True, ema_decay=0.99,
                      jitter=0.5, speaker_table_dim=64, decoder_channels=160, decoder_layers=2),
    }

    def __init__(self, *, mel: MelConfig | dict | None = None, mel_mean: float = -5.4,
                 mel_std: float = 2.2, encoder_channels: int = 768, encoder_blocks: int = 2,
                 frames_per_code: int = 2, codebook_size: int = 512, code_dim: int = 64,
                 beta: float = 0.25, ema: bool = True, ema_decay: float = 0.999,
                 levels: int = 1, top_frames_per_code: int = 2,
                 speaker_conditioning: str = "embedding", n_speakers: int | None = None,
                 embedding_dim: int = 256, speaker_table_dim: int = 64,
                 decoder_channels: int = 256, decoder_layers: int = 2, jitter: float = 0.5,
                 dead_code_threshold: float = 0.5, recon_loss: str = "l1"):
        super().__init__()
        self.mel = as_dataclass(MelConfig, mel)
        self.init_kwargs["mel"] = self.mel  # pin today's default mel settings in config.json
        problems = []
        if levels not in (1, 2):
            problems.append(f"levels must be 1 or 2, got {levels}")
        if speaker_conditioning not in SPEAKER_CONDITIONINGS:
            problems.append(f"speaker_conditioning must be one of {SPEAKER_CONDITIONINGS}, "
                            f"got {speaker_conditioning!r}")
        if speaker_conditioning == "table" and (n_speakers is None or n_speakers < 1):
            problems.append("speaker_conditioning='table' needs n_speakers (the number of "
                            f"training speakers), got {n_speakers}")
        if recon_loss not in RECON_LOSSES:
            problems.append(f"recon_loss must be one of {RECON_LOSSES}, got {recon_loss!r}")
        if not 0.0 <= jitter < 1.0:
            problems.append(f"jitter must be in [0, 1), got {jitter}")
        if mel_std <= 0:
            problems.append(f"mel_std must be positive, got {mel_std}")
        if problems:
            raise ValueError("invalid VQVAE settings: " + "; ".join(problems))

        self.mel_mean, self.mel_std = float(mel_mean), float(mel_std)
        self.frames_per_code = frames_per_code
        self.levels = levels
        self.top_frames_per_code = top_frames_per_code if levels == 2 else 1
        self.frame_multiple = frames_per_code * self.top_frames_per_code
        self.speaker_conditioning = speaker_conditioning
        self.jitter = jitter
        self.dead_code_threshold = dead_code_threshold
        self.recon_loss = recon_loss

        channels = encoder_channels
        self.encoder = nn.Sequential(
            nn.Conv1d(self.mel.n_mels, channels, 3, padding=1), ChannelNorm(channels), nn.ReLU(),
            _downsampler(channels, channels, frames_per_code),
            *[ResidualBlock(channels) for _ in range(encoder_blocks)])
        self.to_code = CodeProjection(channels, code_dim)
        # Codebooks start on the first batch's features and dead codewords are moved back onto
        # the data; from random codewords the codebook collapses to a handful of codes.
        quantizer = dict(beta=beta, ema=ema, decay=ema_decay, init_from_data=True,
                         restart_threshold=dead_code_threshold if ema else 0.0)
        self.quantizer = VectorQuantizer(codebook_size, code_dim, **quantizer)
        if levels == 2:
            self.top_encoder = nn.Sequential(
                _downsampler(channels, channels, top_frames_per_code), ResidualBlock(channels))
            self.top_to_code = CodeProjection(channels, code_dim)
            self.top_quantizer = VectorQuantizer(codebook_size, code_dim, **quantizer)

        if speaker_conditioning == "table":
            self.speaker_table = nn.Embedding(n_speakers, speaker_table_dim)
            self.speaker_dim = speaker_table_dim
        else:
            self.speaker_dim = embedding_dim
        decoder_in = code_dim * levels + self.speaker_dim
        self.decoder_in = nn.Sequential(
            nn.Conv1d(decoder_in, decoder_channels, 3, padding=1), nn.ReLU())
        self.decoder_rnn = nn.GRU(decoder_channels, decoder_channels, num_layers=decoder_layers,
                                  batch_first=True, bidirectional=True)
        self.decoder_out = nn.Linear(2 * decoder_channels, self.mel.n_mels)

    # ------------------------------------------------------------------ speakers
    def speaker(self, mels: Sequence[torch.Tensor], embedding: torch.Tensor | None) -> torch.Tensor:
        """The reference's unit GE2E embedding (embedding_dim,) from `embedding` (a tensor or
        array, renormalised); `mels` are not used.

        Raises:
            ValueError: for a speaker-table model (it knows only its training speakers; use
                `speaker_from_id`), or when no embedding is given.
        """
        if self.speaker_conditioning == "table":
            raise ValueError(
                f"this VQ-VAE uses a learned speaker table (speaker_conditioning='table') and "
                f"only knows its {self.speaker_table.num_embeddings} training speakers; it "
                "cannot take a new speaker from reference audio or an embedding. Use "
                "model.speaker_from_id(i) with a training speaker id, or a model trained with "
                "speaker_conditioning='embedding' for zero-shot conversion.")
        return unit_embedding(embedding, self.speaker_dim, self._device, "this VQ-VAE")

    def speaker_from_id(self, index: int) -> torch.Tensor:
        """The learned speaker vector (speaker_table_dim,) of training speaker `index`."""
        if self.speaker_conditioning != "table":
            raise ValueError("speaker_from_id needs a speaker-table model "
                             "(speaker_conditioning='table'); this one takes GE2E embeddings: "
                             "use model.speaker(mels, embedding)")
        count = self.speaker_table.num_embeddings
        if not 0 <= index < count:
            raise ValueError(f"speaker id {index} is out of range; this model has {count} "
                             f"training speakers (0..{count - 1})")
        return self.speaker_table.weight[index]

    # ------------------------------------------------------------ encode/decode
    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> VQVAECodes:
        """Codes of `mel` (B, n_mels, T), T a multiple of `frame_multiple` (`convert` pads).
        `speaker` is ignored: the encoder never sees who speaks."""
        bottom, top = self._features(self._check_mel(mel))
        return VQVAECodes(self.quantizer.nearest(bottom),
                          None if top is None else self.top_quantizer.nearest(top))

    def decode(self, content: VQVAECodes | torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) of `content` (VQVAECodes, or bottom ids (B, T') for a
        one-level model) spoken by `speaker` (B, speaker_dim)."""
        if isinstance(content, torch.Tensor):
            content = VQVAECodes(content)
        if (content.top is None) != (self.levels == 1):
            raise ValueError(f"this VQ-VAE has {self.levels} code level(s); the content "
                             f"{'lacks' if content.top is None else 'has'} top-level codes")
        top = None if content.top is None else self.top_quantizer.lookup(content.top)
        return self._render(self.quantizer.lookup(content.bottom), top, speaker)

    def content_frames(self, mel: torch.Tensor) -> ContentFrames:
        """Bottom-level pre-quantisation features (T', code_dim) and codes (T',) of one mel
        (n_mels, T), T' = ceil(T / frames_per_code), at mel frame rate / frames_per_code."""
        if mel.dim() != 2:
            raise ValueError(f"content_frames takes one mel (n_mels, frames), got shape "
                             f"{tuple(mel.shape)}")
        frames = math.ceil(mel.shape[-1] / self.frames_per_code)
        with torch.no_grad():
            padded = pad_to_multiple(mel[None], self.frame_multiple)
            features, _ = self._features(self._check_mel(padded))
            features = features[0, :frames]
            codes = self.quantizer.nearest(features)
        return ContentFrames(features, self.mel.frame_rate / self.frames_per_code, codes)

    # ----------------------------------------------------------------- training
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction + beta * commitment (+ codebook loss without EMA) of a batch
        {"mel": (B, n_mels, T), "embedding": (B, embedding_dim), "speaker": (B,) int}.

        Returns the loss and {"recon": log-mel L1/MSE, "commit": unweighted commitment,
        "perplexity": bottom code perplexity, and "perplexity_top" with levels=2}. The loss
        divides recon by mel_std (squared for MSE), i.e. it is the error of normalised mels.
        """
        mel = self._check_mel(batch["mel"], any_length=True)
        frames = mel.shape[-1]
        bottom, top = self._features(pad_to_multiple(mel, self.frame_multiple))
        # Each level: (quantiser, features (B, T', D), mask of codes inside the real frames).
        levels = [(self.quantizer, bottom,
                   self._real_codes(bottom, frames, self.frames_per_code))]
        if top is not None:
            levels.append((self.top_quantizer, top,
                           self._real_codes(top, frames, self.frame_multiple)))
        parts = [quantizer(features, mask=mask) for quantizer, features, mask in levels]
        quantized = parts[0]
        top_vectors = parts[1].quantized if top is not None else None
        bottom_vectors = quantized.quantized
        if self.training and self.jitter > 0:
            bottom_vectors = time_jitter(bottom_vectors, self.jitter)
        output = self._render(bottom_vectors, top_vectors, self._batch_speakers(batch))
        output = output[..., :frames]

        if self.recon_loss == "l1":
            recon = (output - mel).abs().mean()
            normalised = recon / self.mel_std
        else:
            recon = (output - mel).pow(2).mean()
            normalised = recon / self.mel_std ** 2
        total = normalised + sum(part.loss for part in parts)
        logs = {"recon": recon.item(),
                "commit": sum(part.commitment for part in parts).item(),
                "perplexity": quantized.perplexity.item()}
        if not self.quantizer.ema:
            logs["codebook"] = sum(part.codebook_loss for part in parts).item()
        if self.levels == 2:
            logs["perplexity_top"] = parts[1].perplexity.item()
        return total, logs

    # ---------------------------------------------------------------- internals
    @property
    def _device(self) -> torch.device:
        return self.decoder_out.weight.device

    def _check_mel(self, mel: torch.Tensor, any_length: bool = False) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.mel.n_mels:
            raise ValueError(f"expected mels (batch, {self.mel.n_mels}, frames), got shape "
                             f"{tuple(mel.shape)}")
        if not any_length and mel.shape[-1] % self.frame_multiple:
            raise ValueError(f"the mel has {mel.shape[-1]} frames, not a multiple of "
                             f"{self.frame_multiple}; pad it with vc.models.pad_to_multiple "
                             "(convert does this for you)")
        return mel

    def _features(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pre-quantisation features of mel (B, n_mels, T): bottom (B, T / f, code_dim) and
        top (B, T / (f * top_f), code_dim) or None."""
        hidden = self.encoder((mel - self.mel_mean) / self.mel_std)
        top = self.top_to_code(self.top_encoder(hidden)) if self.levels == 2 else None
        return self.to_code(hidden), top

    def _render(self, bottom: torch.Tensor, top: torch.Tensor | None,
                speaker: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) from codewords bottom (B, T', D), top (B, T'', D) or None,
        and speakers (B, speaker_dim)."""
        frames = bottom.shape[1] * self.frames_per_code
        if speaker.dim() != 2 or speaker.shape != (bottom.shape[0], self.speaker_dim):
            raise ValueError(f"expected speakers of shape ({bottom.shape[0]}, {self.speaker_dim}), "
                             f"got {tuple(speaker.shape)}")
        if self.speaker_conditioning == "embedding":
            # Unit-norm embeddings have entries ~1/16; scale them to unit RMS like the codewords.
            speaker = speaker * math.sqrt(self.speaker_dim)
        inputs = [bottom.repeat_interleave(self.frames_per_code, dim=1)]
        if top is not None:
            inputs.append(top.repeat_interleave(self.frame_multiple, dim=1))
        inputs.append(speaker[:, None, :].expand(-1, frames, -1))
        hidden = self.decoder_in(torch.cat(inputs, dim=-1).transpose(1, 2))
        hidden, _ = self.decoder_rnn(hidden.transpose(1, 2))
        normalised = self.decoder_out(hidden).transpose(1, 2)
        return normalised * self.mel_std + self.mel_mean

    def _batch_speakers(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Speaker vectors (B, speaker_dim) of a training batch."""
        if self.speaker_conditioning == "table":
            ids = batch["speaker"].long()
            count = self.speaker_table.num_embeddings
            if ids.min() < 0 or ids.max() >= count:
                raise ValueError(f"speaker ids must be in 0..{count - 1} (n_speakers={count}), "
                                 f"got {ids.min().item()}..{ids.max().item()}")
            return self.speaker_table(ids)
        return F.normalize(batch["embedding"].float(), dim=-1)

    @staticmethod
    def _real_codes(features: torch.Tensor, frames: int, factor: int) -> torch.Tensor:
        """Mask (B, T') of codes that start inside the unpadded `frames`."""
        starts = torch.arange(features.shape[1], device=features.device) * factor
        return (starts < frames)[None, :].expand(features.shape[0], -1)
